-- The latest row per (record, annotator, question) in the append-only log, kept when it is submitted.
with ranked as (
    select *, row_number() over (
        partition by record_id, annotator_id, question
        order by response_updated_at desc, pulled_at desc) as rn
    from haiku_ratings
)
select record_id, annotator_id, annotator, question, value, response_updated_at
from ranked
where rn = 1 and status = 'submitted'
