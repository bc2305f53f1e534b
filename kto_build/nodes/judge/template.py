"""The judge's prompt: a template with ``{prompt}``, ``{completion}``, ``{labels}``,
``{question}`` and ``{guidelines}`` (anything else in braces is literal text).

Without a template the judge gets a short rubric built from the annotation's
question and labels, ending in ``Answer:`` so that the next token is the label
(what the log-probabilities are read from).
"""

from __future__ import annotations

import re

PLACEHOLDERS = ("prompt", "completion", "labels", "question", "guidelines")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")

DEFAULT_TEMPLATE = """You rate a response to a request. {question}
{guidelines}
Request: {prompt}

Response:
{completion}

Reply with exactly one of: {labels}.
Answer:"""


def unknown_placeholders(template: str) -> list[str]:
    """Names in ``{...}`` that are not placeholders (likely typos of one)."""
    return [m for m in _PLACEHOLDER.findall(template) if m not in PLACEHOLDERS]


def label_list(labels: list[str]) -> str:
    return ", ".join(labels[:-1]) + " or " + labels[-1] if len(labels) > 1 else "".join(labels)


def render(template: str, *, prompt: str, completion: str, labels: list[str], question: str,
           guidelines: str = "") -> str:
    """The template with its placeholders filled in one pass (a value holding "{prompt}" stays as written)."""
    values = {"prompt": prompt, "completion": completion, "labels": label_list(labels),
              "question": question, "guidelines": (guidelines or "").strip()}

    def fill(m: re.Match) -> str:
        return values[m.group(1)] if m.group(1) in values else m.group(0)

    text = _PLACEHOLDER.sub(fill, template)
    return re.sub(r"\n{3,}", "\n\n", text) if template is DEFAULT_TEMPLATE else text
