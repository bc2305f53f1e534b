-- One row per distinct prompt text, with all Unicode whitespace stripped at both ends
-- (tabs, newlines, no-break and other Unicode spaces, zero-width space, BOM: DuckDB's
-- trim() strips only ' ', and RE2's \s is ASCII-only, hence the explicit class);
-- prompts that are only whitespace are dropped.
-- When two rows hold the same text, the smallest prompt_id wins (then the smallest
-- topic_seed, so that exact copies with different seeds give the same table every build).
select prompt_id, prompt, topic_seed
from (
    select
        prompt_id,
        prompt,
        topic_seed,
        row_number() over (partition by prompt order by prompt_id, topic_seed nulls last) as copy_no
    from (
        select prompt_id, regexp_replace(prompt, '^[\s\x0B\x{85}\p{Z}\x{200B}\x{FEFF}]+|[\s\x0B\x{85}\p{Z}\x{200B}\x{FEFF}]+$', '', 'g') as prompt, topic_seed
        from haiku_prompts
    ) as cleaned
    where prompt <> ''
) as p
where copy_no = 1
order by prompt_id
