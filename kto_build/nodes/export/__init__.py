"""Exports: a model written as a TRL-ready dataset (see ``node``), with its dataset card (``card``)."""

from .node import ExportNode

__all__ = ["ExportNode"]
