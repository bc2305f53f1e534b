-- Per generator model: generations sent to people, rated, and the up-vote rate.
select t.model_name, t.generator,
       count(*) as sent,
       count(v.generation_id) as rated,
       sum(v.up_votes) / nullif(sum(v.annotators), 0) as up_rate
from to_annotate t
left join label_votes v on v.generation_id = t.id
group by t.model_name, t.generator
order by up_rate desc
