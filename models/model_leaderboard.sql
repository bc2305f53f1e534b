-- Per model and generator: generated rows, usable completions, sent to people,
-- rated, and the share of thumbs up among the answers.
with generated as (
    select model_name, generator, count(*) as generated
    from haiku_generations
    group by all
),

usable as (
    select model_name, generator, count(*) as usable
    from stg_generations
    group by all
),

sent as (
    select model_name, generator, count(*) as sent_to_humans
    from to_annotate
    group by all
),

rated as (
    select
        model_name,
        generator,
        count(*) as rated,
        sum(up_votes) as up_votes,
        sum(down_votes) as down_votes
    from label_votes
    group by all
)

select
    g.model_name,
    g.generator,
    g.generated,
    coalesce(u.usable, 0) as usable,
    coalesce(s.sent_to_humans, 0) as sent_to_humans,
    coalesce(r.rated, 0) as rated,
    coalesce(r.up_votes, 0) as up_votes,
    coalesce(r.down_votes, 0) as down_votes,
    r.up_votes / nullif(r.up_votes + r.down_votes, 0) as up_rate
from generated as g
left join usable as u using (model_name, generator)
left join sent as s using (model_name, generator)
left join rated as r using (model_name, generator)
order by up_rate desc nulls last, g.model_name, g.generator
