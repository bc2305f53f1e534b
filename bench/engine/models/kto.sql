-- KTO rows: enough answers, enough agreement, no ties.
select prompt, completion, up_votes > down_votes as label
from label_votes
where annotators >= getvariable('min_annotators')
  and agreement >= getvariable('min_agreement')
  and up_votes <> down_votes
