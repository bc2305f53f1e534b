"""Judges (AI feedback): a model answers an annotation's question for every record.

- ``node``: ``JudgeNode`` (sources.yml ``judges:``), on the generation package's call machinery.
- ``cache``: the ``_kto_build.judgements`` table, its keys and rows.
- ``verdict``: the pure verdict parser and the log-probability reader.
- ``template``: the judge's prompt (default: a short rubric from the question and labels).
"""

from .node import JudgeNode

__all__ = ["JudgeNode"]
