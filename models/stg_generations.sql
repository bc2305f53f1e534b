-- Generations that succeeded and said something, joined to their (cleaned) prompt.
-- Prompt and completion lose all Unicode whitespace at both ends, as in stg_prompts.
select
    g.generation_id,
    p.prompt_id,
    p.prompt,
    g.system_prompt,
    g.generator,
    g.model_name,
    g.sample_index,
    g.completion,
    g.created_at
from (
    select
        * replace (regexp_replace(completion, '^[\s\x0B\x{85}\p{Z}\x{200B}\x{FEFF}]+|[\s\x0B\x{85}\p{Z}\x{200B}\x{FEFF}]+$', '', 'g') as completion),
        regexp_replace(prompt, '^[\s\x0B\x{85}\p{Z}\x{200B}\x{FEFF}]+|[\s\x0B\x{85}\p{Z}\x{200B}\x{FEFF}]+$', '', 'g') as clean_prompt
    from haiku_generations
    where status = 'ok'
) as g
join stg_prompts as p on p.prompt = g.clean_prompt
where g.completion <> ''
order by g.generation_id
