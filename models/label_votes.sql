-- Per rated generation: up votes, down votes, how many people answered, and
-- agreement = the majority's share of the answers (0.5 on a tie).
select
    g.generation_id,
    g.prompt_id,
    g.prompt,
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
from stg_responses as r
join stg_generations as g on g.generation_id = r.record_id
group by all
order by g.generation_id
