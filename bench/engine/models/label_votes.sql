-- Per generation sent to people: up votes, down votes, annotators, agreement (majority share).
with votes as (
    select r.record_id,
           count(*) filter (where r.value = getvariable('positive_label')) as up_votes,
           count(*) filter (where r.value <> getvariable('positive_label')) as down_votes,
           count(*) as annotators
    from stg_responses r
    group by r.record_id
)
select t.id as generation_id, t.prompt_id, t.prompt, t.completion, t.model_name, t.generator,
       v.up_votes, v.down_votes, v.annotators,
       greatest(v.up_votes, v.down_votes) / v.annotators as agreement,
       v.up_votes / v.annotators as up_share
from to_annotate t
join votes v on v.record_id = t.id
