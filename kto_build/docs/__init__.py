"""The static lineage and statistics site (``kto-build docs``) and the dataset card's pictures.

Light to import: altair, vl-convert, grandalf and pygments load only when a site is built.
"""

from __future__ import annotations


def build_site(project, out=None) -> dict:
    from .build import build_site as _build

    return _build(project, out)


def card_pictures(con, project, node, folder) -> list[tuple[str, str]]:
    from .cardpics import card_pictures as _pictures

    return _pictures(con, project, node, folder)


__all__ = ["build_site", "card_pictures"]
