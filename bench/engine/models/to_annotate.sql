-- What goes to people: completions with exactly required_lines lines.
select generation_id as id, prompt_id, prompt, completion, model_name, generator
from stg_generations
where len(string_split(completion, chr(10))) = getvariable('required_lines')
