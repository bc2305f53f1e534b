-- Where kto and dpo take their labels from, from the vars: label_source (human, judge or
-- human_else_judge) and judge_model (which judge model's verdicts count). One row; a run
-- with any other label_source fails here, naming the values it accepts.
select
    getvariable('label_source') as label_source,
    getvariable('judge_model') as judge_model
where getvariable('label_source') in ('human', 'judge', 'human_else_judge')
union all
select
    error('var label_source must be human, judge or human_else_judge, not ' || getvariable('label_source')),
    null
where getvariable('label_source') not in ('human', 'judge', 'human_else_judge')
