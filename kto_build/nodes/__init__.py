"""Node kinds. Each kind lives in its own module and is imported only when a
project declares a node of that kind; heavy libraries are imported inside
``run`` so that planning never pays for them."""

from __future__ import annotations

import importlib

#: section of sources.yml / project.yml -> (module, class)
KINDS = {
    "prompts": ("kto_build.nodes.source", "SourceNode"),
    "generators": ("kto_build.nodes.generation", "GenerationNode"),
    "annotations": ("kto_build.nodes.annotation", "AnnotationNode"),
    "judges": ("kto_build.nodes.judge", "JudgeNode"),
    "exports": ("kto_build.nodes.export", "ExportNode"),
}


def node_class(section: str):
    module, cls = KINDS[section]
    return getattr(importlib.import_module(module), cls)
