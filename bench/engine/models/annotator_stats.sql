-- Per annotator: answers, up rate, agreement with the majority (generations with a strict majority).
with majority as (
    select generation_id, up_votes > down_votes as majority_up
    from label_votes where up_votes <> down_votes
)
select r.annotator_id, any_value(r.annotator) as annotator,
       count(*) as answers,
       avg(case when r.value = getvariable('positive_label') then 1.0 else 0.0 end) as up_rate,
       avg(case when m.generation_id is null then null
                when (r.value = getvariable('positive_label')) = m.majority_up then 1.0 else 0.0 end)
           as agreement_with_majority
from stg_responses r
join to_annotate t on t.id = r.record_id
left join majority m on m.generation_id = r.record_id
group by r.annotator_id
