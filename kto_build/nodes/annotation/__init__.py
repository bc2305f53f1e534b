"""Annotation nodes: human answers in an append-only response log.

- ``node``: ``AnnotationNode`` (config, staleness, the local and Argilla runs)
- ``log``: the response log ``<node>`` and its view ``<node>_latest``
- ``push``: the push log ``_kto_build.annotation_records``

The CLI services (answers files, pending export, status) are in
``kto_build/services/annotations.py``.
"""

from .node import AnnotationNode

__all__ = ["AnnotationNode"]
