-- Per annotator: answers, up rate, and how often they agree with the majority of
-- the *other* annotators of the same generation (records where the others tie or
-- nobody else answered are not compared), with Cohen's kappa against that majority
-- (NULL where undefined: fewer than 1 comparison or chance agreement = 1).
-- Judges are listed beside people (kind 'judge', annotator_id 'judge:<model>'): a
-- verdict is compared with the majority of all people who rated the generation.
with answers as (
    select
        r.annotator_id,
        r.annotator,
        r.is_up,
        v.up_votes - (case when r.is_up then 1 else 0 end) as others_up,
        v.down_votes - (case when r.is_up then 0 else 1 end) as others_down
    from stg_responses as r
    join label_votes as v on v.generation_id = r.record_id
    union all
    select
        'judge:' || j.judge_model as annotator_id,
        j.judge_model as annotator,
        j.label = getvariable('positive_label') as is_up,
        coalesce(v.up_votes, 0) as others_up,
        coalesce(v.down_votes, 0) as others_down
    from haiku_judge as j
    left join label_votes as v on v.generation_id = j.record_id
    where j.status = 'ok' and j.label is not null
),

compared as (
    select
        *,
        case when others_up > others_down then true when others_up < others_down then false end as others_say
    from answers
),

per_annotator as (
    select
        annotator_id,
        any_value(annotator order by annotator) as annotator,
        count(*) as answers,
        avg(case when is_up then 1.0 else 0.0 end) as up_rate,
        count(others_say) as compared,
        avg(case when others_say is null then null when is_up = others_say then 1.0 else 0.0 end) as agreement,
        avg(case when others_say is null then null when is_up then 1.0 else 0.0 end) as own_up,
        avg(case when others_say is null then null when others_say then 1.0 else 0.0 end) as majority_up
    from compared
    group by annotator_id
)

select
    annotator_id,
    annotator,
    case when annotator_id like 'judge:%' then 'judge' else 'person' end as kind,
    answers,
    up_rate,
    compared,
    agreement as agreement_with_majority,
    case
        when compared > 0 and (own_up * majority_up + (1 - own_up) * (1 - majority_up)) < 1
            then (agreement - (own_up * majority_up + (1 - own_up) * (1 - majority_up)))
                / (1 - (own_up * majority_up + (1 - own_up) * (1 - majority_up)))
    end as kappa_vs_majority
from per_annotator
order by annotator_id
