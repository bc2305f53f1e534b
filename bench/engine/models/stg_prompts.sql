-- Prompts, trimmed, without empties, one row per distinct text (the smallest prompt_id wins).
select min(prompt_id) as prompt_id, trim(prompt) as prompt
from haiku_prompts
where trim(coalesce(prompt, '')) <> ''
group by trim(prompt)
