"""The ``evorag`` command line: one module per command group, each command parses its input, calls one
service method (evorag.service.Evorag) and formats the result (tables for people, --json for scripts).

``main`` is the console entry point; ``python -m evorag.cli`` runs it too.
"""

from __future__ import annotations

import sys

import click
import typer
from rich.markup import escape as esc

from evorag.approval_token import reexec_without_token
from evorag.cli._app import app, err

# Importing the command modules registers their commands on ``app``, in this order in --help.
# isort: off
from evorag.cli import _knowledge, _sources, _quality, _evolution, _teams, _approvals, _servers, _queue, _admin  # noqa: F401
from evorag.cli import _monitoring, _webhooks  # noqa: F401
from evorag.cli import _proposals  # noqa: F401
from evorag.cli import _usage  # noqa: F401
from evorag.cli import _feedback  # noqa: F401
# isort: on
from evorag.errors import EvoragError
from evorag.terminal import strip_control

__all__ = ["app", "main"]


def main(argv: list[str] | None = None) -> int:
    """Console entry point: user-facing errors become one line on stderr and an exit code."""
    if argv is None:  # a real `evorag` process, not a call from Python: see evorag/approval_token.py
        reexec_without_token(sys.argv[1:])
    try:
        # Without standalone mode click returns typer.Exit's code instead of raising it.
        result = app(args=argv, standalone_mode=False)
    except EvoragError as exc:
        err.print(f"[bold red]error:[/] {esc(strip_control(exc.message))}", highlight=False)
        if exc.hint:
            err.print(f"  hint: {exc.hint}", highlight=False, markup=False)
        return exc.exit_code
    except (click.exceptions.Abort, typer.Abort):
        err.print("aborted")
        return 130
    except KeyboardInterrupt:
        err.print("interrupted: run the same command again to resume")
        return 130
    except (click.exceptions.Exit, typer.Exit) as exc:
        return getattr(exc, "exit_code", 1)
    except (click.ClickException, typer.TyperException) as exc:
        # typer vendors its own click: usage errors come as either family.
        show = getattr(exc, "show", None)
        if show is not None:
            show()
        else:
            err.print(f"error: {exc}", highlight=False, markup=False)
        return getattr(exc, "exit_code", 2)
    return result if isinstance(result, int) else 0
