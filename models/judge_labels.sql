-- The verdicts of one judge model (var `judge_model`) on the records people rate,
-- joined to their generation. A verdict counts when the judge gave one of the labels
-- (status 'ok'); is_up = the label is `positive_label`. These are AI feedback, not people.
select
    g.generation_id,
    g.prompt_id,
    g.prompt,
    g.system_prompt,
    g.completion,
    g.model_name,
    g.generator,
    j.judge_model,
    j.label as value,
    j.label = getvariable('positive_label') as is_up,
    j.score
from haiku_judge as j
join stg_generations as g on g.generation_id = j.record_id
where j.status = 'ok'
  and j.label is not null
  and j.judge_model = getvariable('judge_model')
order by g.generation_id
