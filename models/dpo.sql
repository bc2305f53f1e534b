-- DPO pairs (TRL: prompt, chosen, rejected): per prompt the best- and the worst-rated
-- generation by up-vote share, when their shares differ by at least `dpo_min_margin`.
-- Ties break towards more answers, then the smaller generation_id (deterministic).
-- system_prompt is the chosen generation's (the system message of a conversational export).
-- var `label_source` (see kto.sql): with a judge, a judged generation counts as one vote
-- (share 1.0 when the judge says `positive_label`, else 0.0); label_source names the
-- sources of the pair ('human', 'judge:<model>', or both joined by '+').
with human as (
    select prompt_id, prompt, system_prompt, generation_id, completion, up_share as score, annotators,
           'human' as label_source
    from label_votes
    where annotators >= getvariable('min_annotators')
      and (select c.label_source from label_choice as c) in ('human', 'human_else_judge')
),

judged as (
    select prompt_id, prompt, system_prompt, generation_id, completion,
           case when is_up then 1.0 else 0.0 end as score, 1 as annotators,
           'judge:' || judge_model as label_source
    from judge_labels
    where (select c.label_source from label_choice as c) = 'judge'
       or ((select c.label_source from label_choice as c) = 'human_else_judge'
           and generation_id not in (select h.generation_id from human as h))
),

scored as (
    select * from human
    union all
    select * from judged
),

ranked as (
    select
        *,
        row_number() over (partition by prompt_id order by score desc, annotators desc, generation_id) as best,
        row_number() over (partition by prompt_id order by score asc, annotators desc, generation_id) as worst
    from scored
)

select
    b.prompt,
    b.completion as chosen,
    w.completion as rejected,
    b.system_prompt,
    b.score as chosen_score,
    w.score as rejected_score,
    b.generation_id as chosen_id,
    w.generation_id as rejected_id,
    case when b.label_source = w.label_source then b.label_source
         else least(b.label_source, w.label_source) || '+' || greatest(b.label_source, w.label_source)
    end as label_source
from ranked as b
join ranked as w on w.prompt_id = b.prompt_id and w.worst = 1
where b.best = 1
  and round(b.score - w.score, 9) >= getvariable('dpo_min_margin')
  and b.completion <> w.completion
order by b.prompt, b.generation_id
