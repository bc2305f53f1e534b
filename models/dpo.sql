-- DPO pairs (TRL: prompt, chosen, rejected): per prompt the best- and the worst-rated
-- generation by up-vote share, when their shares differ by at least `dpo_min_margin`.
-- Ties break towards more answers, then the smaller generation_id (deterministic).
-- system_prompt is the chosen generation's (the system message of a conversational export).
with scored as (
    select prompt_id, prompt, system_prompt, generation_id, completion, up_share as score, annotators
    from label_votes
    where annotators >= getvariable('min_annotators')
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
    w.generation_id as rejected_id
from ranked as b
join ranked as w on w.prompt_id = b.prompt_id and w.worst = 1
where b.best = 1
  and round(b.score - w.score, 9) >= getvariable('dpo_min_margin')
  and b.completion <> w.completion
order by b.prompt, b.generation_id
