"""Annotation nodes: human answers in an append-only response log (see ``node``)."""

from .node import (
    AnnotationNode,
    annotation_nodes,
    export_pending,
    import_answers,
    pick_local_node,
    read_answers_file,
    status,
)

__all__ = ["AnnotationNode", "annotation_nodes", "export_pending", "import_answers", "pick_local_node",
           "read_answers_file", "status"]
