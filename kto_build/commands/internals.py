"""The node internals that commands call, each imported lazily, in one place.

Commands import node kinds and services only through these functions, so a module that moves changes one
import line here (and ``--help``, ``ls`` and a no-op ``run`` import none of them).
"""

from __future__ import annotations


def pick_local_node(project, name):
    from ..services.annotations import pick_local_node as pick

    return pick(project, name)


def import_answers(project, node, path):
    from ..services.annotations import import_answers as read_answers

    return read_answers(project, node, path)


def export_pending(project, node, path):
    from ..services.annotations import export_pending as write_pending

    return write_pending(project, node, path)


def annotation_status(project, names):
    from ..services.annotations import status

    return status(project, names)


def serve_annotator(project, node, **kwargs):
    from ..annotate_server import serve

    return serve(project, node, **kwargs)


def run_data_tests(project, select, exclude):
    from ..services.tests import run_tests

    return run_tests(project, select, exclude)


def prune_generations(project, apply: bool):
    from ..prune import prune_generations as prune

    return prune(project, apply=apply)


def build_site(project, out):
    from ..docs import build_site as build

    return build(project, out)


def serve_site(out, host, port, ready):
    from ..docs.serve import serve

    return serve(out, host, port, ready=ready)


def config_schema(name: str) -> dict:
    from ..schema import schema_for

    return schema_for(name)
