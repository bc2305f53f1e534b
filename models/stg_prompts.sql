-- One row per distinct prompt text: trimmed, empty prompts dropped.
-- When two rows hold the same text, the smallest prompt_id wins (then the smallest
-- topic_seed, so that exact copies with different seeds give the same table every build).
select prompt_id, prompt, topic_seed
from (
    select
        prompt_id,
        trim(prompt) as prompt,
        topic_seed,
        row_number() over (partition by trim(prompt) order by prompt_id, topic_seed nulls last) as copy_no
    from haiku_prompts
    where nullif(trim(prompt), '') is not null
) as p
where copy_no = 1
order by prompt_id
