-- KTO rows (TRL: prompt, completion, label BOOLEAN). Where the label comes from is the
-- var `label_source` (checked in label_choice):
--   human             people only (the tutorial's rule): a generation gets a label when
--                     enough people answered and enough of them agree; ties never get one;
--   judge             the verdicts of the judge model named by var `judge_model` only;
--   human_else_judge  people's label where it exists, the judge's otherwise.
-- label_source says, per row, 'human' or 'judge:<judge model>'.
-- system_prompt (what the generator told the model) becomes the system message of a
-- conversational export.
with human as (
    select
        prompt,
        completion,
        majority_label as label,
        system_prompt,
        generation_id,
        model_name,
        up_votes,
        down_votes,
        agreement,
        'human' as label_source
    from label_votes
    where annotators >= getvariable('min_annotators')
      and agreement >= getvariable('min_agreement')
      and up_votes <> down_votes
      and (select c.label_source from label_choice as c) in ('human', 'human_else_judge')
),

judged as (
    select
        prompt,
        completion,
        is_up as label,
        system_prompt,
        generation_id,
        model_name,
        null::bigint as up_votes,
        null::bigint as down_votes,
        null::double as agreement,
        'judge:' || judge_model as label_source
    from judge_labels
    where (select c.label_source from label_choice as c) = 'judge'
       or ((select c.label_source from label_choice as c) = 'human_else_judge'
           and generation_id not in (select h.generation_id from human as h))
)

select * from human
union all
select * from judged
order by prompt, completion, generation_id
