-- Per judge model: how well its verdicts match people's. Compared are the records with
-- both a human majority label (label_votes, ties left out) and a verdict with a label;
-- "up" = the label is `positive_label`. accuracy = share of equal labels; kappa = Cohen's
-- kappa between judge and people (NULL where undefined: nothing compared, or chance
-- agreement = 1); the four confusion counts are (judge, human) = (up, up), (up, down), ...
with verdicts as (
    select judge_model, record_id, label = getvariable('positive_label') as judge_up
    from haiku_judge
    where status = 'ok' and label is not null
),

pairs as (
    select v.judge_model, v.judge_up, h.majority_label as human_up
    from verdicts as v
    join label_votes as h on h.generation_id = v.record_id
    where h.majority_label is not null
),

models as (
    select distinct judge_model from haiku_judge
),

counts as (
    select
        judge_model,
        count(*) as compared,
        count(*) filter (where judge_up and human_up) as judge_up_human_up,
        count(*) filter (where judge_up and not human_up) as judge_up_human_down,
        count(*) filter (where not judge_up and human_up) as judge_down_human_up,
        count(*) filter (where not judge_up and not human_up) as judge_down_human_down,
        avg(case when judge_up = human_up then 1.0 else 0.0 end) as accuracy,
        avg(case when judge_up then 1.0 else 0.0 end) as judge_up_rate,
        avg(case when human_up then 1.0 else 0.0 end) as human_up_rate
    from pairs
    group by judge_model
)

select
    m.judge_model,
    (select count(*) from verdicts as v where v.judge_model = m.judge_model) as verdicts,
    coalesce(c.compared, 0) as compared,
    c.accuracy,
    case
        when c.compared > 0
         and (c.judge_up_rate * c.human_up_rate + (1 - c.judge_up_rate) * (1 - c.human_up_rate)) < 1
            then (c.accuracy - (c.judge_up_rate * c.human_up_rate + (1 - c.judge_up_rate) * (1 - c.human_up_rate)))
                / (1 - (c.judge_up_rate * c.human_up_rate + (1 - c.judge_up_rate) * (1 - c.human_up_rate)))
    end as kappa,
    coalesce(c.judge_up_human_up, 0) as judge_up_human_up,
    coalesce(c.judge_up_human_down, 0) as judge_up_human_down,
    coalesce(c.judge_down_human_up, 0) as judge_down_human_up,
    coalesce(c.judge_down_human_down, 0) as judge_down_human_down
from models as m
left join counts as c using (judge_model)
order by m.judge_model
