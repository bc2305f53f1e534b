-- KTO rows (TRL: prompt, completion, label BOOLEAN). A generation gets a label when
-- enough people answered and enough of them agree; ties never get one.
-- Defaults (project.yml vars) reproduce the tutorial: min 1 answer, unanimity.
select
    prompt,
    completion,
    majority_label as label,
    generation_id,
    model_name,
    up_votes,
    down_votes,
    agreement
from label_votes
where annotators >= getvariable('min_annotators')
  and agreement >= getvariable('min_agreement')
  and up_votes <> down_votes
order by prompt, completion, generation_id
