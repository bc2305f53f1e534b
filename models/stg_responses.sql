-- The current answer per record and annotator, from the append-only log: the latest
-- event decides, as Argilla shows it. A discard (or a draft) saved after a submitted
-- answer withdraws it; the log (haiku_ratings) keeps every row.
-- The old rule, "a submitted answer counts until a newer one is submitted", is one
-- line: move `and status = 'submitted'` from the outer WHERE into the inner one.
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
) as r
where newest_first = 1
  and status = 'submitted'
order by record_id, annotator_id
