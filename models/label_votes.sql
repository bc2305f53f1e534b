-- Per rated generation: up votes, down votes, how many people answered, and
-- agreement = the majority's share of the answers (0.5 on a tie).
-- Votes count per distinct (prompt, completion) text: answers given to copies of one
-- text (records sent before to_annotate deduplicated them) go to the smallest
-- generation_id, one vote per annotator (their latest answer).
with canonical as (
    select
        generation_id,
        min(generation_id) over (partition by prompt, completion) as canonical_id
    from stg_generations
),

votes as (
    select
        c.canonical_id as generation_id,
        r.annotator_id,
        arg_max(r.is_up, r.response_updated_at) as is_up
    from stg_responses as r
    join canonical as c on c.generation_id = r.record_id
    group by all
)

select
    g.generation_id,
    g.prompt_id,
    g.prompt,
    g.system_prompt,
    g.completion,
    g.model_name,
    g.generator,
    count(*) filter (where r.is_up) as up_votes,
    count(*) filter (where not r.is_up) as down_votes,
    count(*) as annotators,
    count(*) filter (where r.is_up) / count(*) as up_share,
    greatest(count(*) filter (where r.is_up), count(*) filter (where not r.is_up)) / count(*) as agreement,
    case
        when count(*) filter (where r.is_up) > count(*) filter (where not r.is_up) then true
        when count(*) filter (where r.is_up) < count(*) filter (where not r.is_up) then false
    end as majority_label
from votes as r
join stg_generations as g on g.generation_id = r.generation_id
group by all
order by g.generation_id
