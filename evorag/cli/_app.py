"""The typer application, its command groups, and what every command shares: the consoles, the service, the
JSON printer, the approver. Commands live in one module per group (_knowledge, _quality, _evolution,
_approvals, _servers, _admin).

Who the CLI acts for: the local OS user. Owning EVORAG_HOME (or being root) makes them its admin, so every
command's role check passes; anyone else is a reader. One exception holds even for the admin: approving a
HIGH-risk change needs the human approval token, because a coding assistant with a shell can run this CLI
(and give it a terminal with ``script``) as easily as a person can.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape as esc

from evorag.principals import Principal, home_owner_principal
from evorag.service import Evorag, PolicyApprover, TerminalApprover
from evorag.settings import load_settings
from evorag.team_events import event_text, first_line
from evorag.terminal import escape_json_controls, strip_control

if TYPE_CHECKING:  # the evolution pipeline loads when a command runs it, not at every start (issue 14)
    from evorag.service import Approver, EvolutionOutcome

app = typer.Typer(
    name="evorag",
    help="Self-improving documentation RAG: crawl docs, search them with citations, measure answers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
sources_app = typer.Typer(help="List, remove, export or import indexed sources and their versions; see what "
                          "changed.", invoke_without_command=True)
app.add_typer(sources_app, name="sources")
tools_app = typer.Typer(help="Deployed (evolved) tools: add through the gates, list, document.", no_args_is_help=True)
app.add_typer(tools_app, name="tools")
approvals_app = typer.Typer(
    help="Pending approvals of risky changes. Deciding needs the approver role (the local user who owns "
    "EVORAG_HOME is admin). LOW risk may be approved by policy (--yes), MEDIUM by an approver, HIGH by an "
    "approver with the human approval token: EVORAG_APPROVAL_TOKEN, or typed at the prompt (never echoed). "
    "A terminal alone is not proof of a person: an assistant can drive one.",
    invoke_without_command=True,
)
app.add_typer(approvals_app, name="approvals")
users_app = typer.Typer(
    help="Principals and their roles (reader < operator < approver < admin) for MCP over HTTP and the UI. "
    "Tokens are shown once and stored hashed under EVORAG_HOME. Needs the admin role (the local user who "
    "owns EVORAG_HOME).",
    no_args_is_help=True,
)
app.add_typer(users_app, name="users")
team_app = typer.Typer(help="Run a team from a spec file, or talk to one.", no_args_is_help=True)
app.add_typer(team_app, name="team")


class _TerminalSafeConsole(Console):
    """A Console that prints text, never terminal commands: escape sequences and control characters in the
    strings it is given (tool output, gate messages, page text, model output) are removed first. Markup in
    untrusted text is still escaped where it is formatted (``esc``); renderables (tables, Markdown) are
    sanitised where they are built."""

    def print(self, *objects: Any, **kwargs: Any) -> None:
        super().print(*(strip_control(o) if isinstance(o, str) else o for o in objects), **kwargs)


out = _TerminalSafeConsole(soft_wrap=True)
err = _TerminalSafeConsole(stderr=True, soft_wrap=True)  # no wrapping: an error stays one line in a log

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
SourceOpt = Annotated[str | None, typer.Option(
    "--source", "-s", help="Restrict to this source: NAME, NAME@VERSION, NAME@latest or a range (NAME@>=2,<3, "
    "NAME@~=2.2, NAME@^2).")]
YES_HELP = "Approve LOW risk without asking (policy); MEDIUM and HIGH stay pending for `evorag approvals approve`."


def principal() -> Principal:
    """The local CLI user (see the module docstring)."""
    return home_owner_principal(load_settings().home, via="cli")


def service() -> Evorag:
    return Evorag(principal=principal())


def spinner(text: str, *, enabled: bool):
    """A spinner on stderr while a command waits (none with --json, whose stdout a script reads)."""
    return err.status(text, spinner="dots") if enabled else contextlib.nullcontext()


def print_json(data: Any) -> None:
    # json.dumps escapes C0 controls itself; DEL, C1 and bidi overrides stay raw without ensure_ascii.
    sys.stdout.write(escape_json_controls(json.dumps(data, indent=2, ensure_ascii=False, default=str)) + "\n")


def interactive() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


def read_secret(prompt: str) -> str:
    """A secret typed at the terminal, never echoed; empty at end of input."""
    try:
        return getpass.getpass(prompt)
    except EOFError:
        return ""


def approver(yes: bool, as_json: bool) -> Approver:
    """Ask at the terminal when there is one to ask at (HIGH risk then also asks for the human approval
    token), else apply the policy: --yes approves LOW risk only."""
    who = principal()
    if interactive() and not yes and not as_json:
        return TerminalApprover(who, ask_secret=read_secret)
    return PolicyApprover(assume_yes=yes, principal=who)


def print_event(event: object) -> None:
    """A team event as one dim line on stderr (stdout stays the result)."""
    spoken = event_text(event)
    if spoken is not None:
        source, content = spoken
        err.print(f"[dim]{esc(source)}:[/] {esc(first_line(content))}", highlight=False)


def outcome_lines(outcome: EvolutionOutcome) -> None:
    color = {"deployed": "green", "pending": "yellow"}.get(outcome.status, "red")
    out.print(f"[bold {color}]{outcome.status}[/] (risk {outcome.risk})"
              + (f": tool {outcome.tool}" if outcome.tool else "")
              + (f", version {outcome.version_id}" if outcome.version_id else ""))
    for verdict in outcome.verdicts:
        mark = "[green]✓[/]" if verdict.ok else "[red]✗[/]"
        out.print(f"  {mark} {verdict.gate}" + (f": {esc(verdict.reason)}" if verdict.reason else ""), highlight=False)
    if outcome.status == "pending" and outcome.approval_id:
        out.print(f"  waiting for a human: `evorag approvals approve {outcome.approval_id}` (or the UI)")
