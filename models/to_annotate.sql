-- What goes to people: as in the tutorial, only haiku with exactly
-- `required_lines` non-empty lines. `id` is the generation_id.
select
    generation_id as id,
    prompt,
    completion,
    model_name,
    generator
from stg_generations
-- a "line" is a run of characters between newlines holding at least one non-space
where len(regexp_extract_all(completion, '[^\n]*[^\s][^\n]*')) = getvariable('required_lines')
order by id
