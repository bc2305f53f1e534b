-- Generations of kept prompts, without failed or empty completions.
select g.generation_id, p.prompt_id, p.prompt, g.model_name, g.generator, g.sample_index,
       trim(g.completion) as completion
from haiku_generations g
join stg_prompts p on p.prompt_id = g.prompt_id
where g.status = 'ok' and trim(coalesce(g.completion, '')) <> ''
