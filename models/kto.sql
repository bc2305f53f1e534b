-- KTO rows (TRL: prompt, completion, label BOOLEAN). A generation gets a label when
-- enough people answered and enough of them agree; ties never get one.
-- Defaults (project.yml vars) reproduce the tutorial: min 1 answer, unanimity.
-- system_prompt (what the generator told the model) becomes the system message of a
-- conversational export.
select
    prompt,
    completion,
    majority_label as label,
    system_prompt,
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
