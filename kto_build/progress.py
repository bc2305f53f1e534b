"""Progress bars (rich): done/total, rate and ETA."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def rich_progress(description: str, total: int | None) -> Iterator:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task):
            return Text(f"{task.speed:.1f}/s" if task.speed else "  -/s")

    columns = [TextColumn("      {task.description}"), BarColumn(), MofNCompleteColumn(), RateColumn(),
               TextColumn("eta"), TimeRemainingColumn()]
    with Progress(*columns, transient=False) as progress:
        task = progress.add_task(description, total=total)

        class Handle:
            def advance(self, n: int = 1) -> None:
                progress.advance(task, n)

            def update(self, **kw) -> None:
                progress.update(task, **kw)

        yield Handle()
