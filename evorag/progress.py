"""Progress bars for long work, drawn on stderr so --json output on stdout stays clean."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)


@contextmanager
def crawl_progress(console: Console, *, enabled: bool = True) -> Iterator:
    if not enabled:
        yield None
        return
    progress = Progress(
        SpinnerColumn(),
        TextColumn("crawling"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
    task = progress.add_task("crawl", total=None, status="")

    def on_progress(state) -> None:
        progress.update(
            task,
            completed=state.done,
            total=max(state.discovered, state.done) or None,
            status=f"{state.indexed} indexed, {state.unchanged} unchanged, {state.failed} failed, "
            f"{state.chunks} chunks",
        )

    with progress:
        yield on_progress


@contextmanager
def counting_progress(console: Console, label: str, *, enabled: bool = True) -> Iterator:
    """A plain bar, shown from the first ``update(done, total)`` on (work that never reports shows none)."""
    if not enabled:
        yield lambda done, total: None
        return
    progress = Progress(
        TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=True
    )
    task = progress.add_task(label, total=None, start=False)

    def update(done: int, total: int) -> None:
        if not progress.live.is_started:
            progress.start()
            progress.start_task(task)
        progress.update(task, completed=done, total=total)

    try:
        yield update
    finally:
        progress.stop()
