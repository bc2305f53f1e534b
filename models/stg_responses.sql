-- The latest submitted answer per record and annotator, from the append-only log.
-- Drafts and discards are ignored: a submitted answer counts until a newer one is submitted.
select
    record_id,
    annotator_id,
    annotator,
    value,
    value = getvariable('positive_label') as is_up,
    response_updated_at
from (
    select
        *,
        row_number() over (
            partition by record_id, annotator_id
            order by response_updated_at desc, pulled_at desc, value
        ) as newest_first
    from haiku_ratings
    where question = 'label'
      and status = 'submitted'
) as r
where newest_first = 1
order by record_id, annotator_id
