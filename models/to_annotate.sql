-- What goes to people: as in the tutorial, only haiku with exactly
-- `required_lines` non-empty lines, and each distinct (prompt, completion) text once
-- (greedy decoding with num_generations > 1 writes the same text twice: people rate
-- it once, so votes count per distinct text; the smallest generation_id stands for it).
-- `id` is the generation_id.
select
    generation_id as id,
    prompt,
    completion,
    model_name,
    generator
from stg_generations
-- a "line" is a run of characters between newlines holding at least one non-space
where len(regexp_extract_all(completion, '[^\n]*[^\s][^\n]*')) = getvariable('required_lines')
qualify row_number() over (partition by prompt, completion order by generation_id) = 1
order by id
