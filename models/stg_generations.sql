-- Generations that succeeded and said something, joined to their (cleaned) prompt.
select
    g.generation_id,
    p.prompt_id,
    p.prompt,
    g.system_prompt,
    g.generator,
    g.model_name,
    g.sample_index,
    trim(g.completion) as completion,
    g.created_at
from haiku_generations as g
join stg_prompts as p on p.prompt = trim(g.prompt)
where g.status = 'ok'
  and nullif(trim(g.completion), '') is not null
order by g.generation_id
