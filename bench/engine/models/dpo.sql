-- DPO pairs: per prompt the best- and worst-rated generations (ties: more annotators, then
-- the smaller generation_id), kept when their up-vote shares differ by at least dpo_min_margin.
with rated as (
    select * from label_votes where annotators >= getvariable('min_annotators')
),
ranked as (
    select *,
        row_number() over (partition by prompt_id order by up_share desc, annotators desc, generation_id) as best,
        row_number() over (partition by prompt_id order by up_share asc, annotators desc, generation_id) as worst
    from rated
)
select b.prompt, b.completion as chosen, w.completion as rejected,
       b.up_share as chosen_score, w.up_share as rejected_score
from ranked b
join ranked w on w.prompt_id = b.prompt_id and w.worst = 1
where b.best = 1 and b.up_share - w.up_share >= getvariable('dpo_min_margin')
