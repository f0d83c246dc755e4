"""Agents and teams: what is installed and from where (`evorag agents list`, `evorag teams list`), and the group
chat with a team at the terminal (`evorag team chat`)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import termios
import threading
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.markup import escape as esc

from evorag.cli._app import (
    YES_HELP,
    JsonFlag,
    app,
    err,
    interactive,
    out,
    principal,
    print_json,
    read_secret,
    service,
    team_app,
)
from evorag.service import Approver, PolicyApprover, TerminalApprover
from evorag.team_events import event_record, event_text
from evorag.terminal import escape_json_controls

agents_app = typer.Typer(help="Agents a team can name: evorag's own and those installed packages add (entry point "
                         "group evorag.agents).", no_args_is_help=True)
app.add_typer(agents_app, name="agents")
teams_app = typer.Typer(help="Teams: evorag's own and those installed packages add (entry point group "
                        "evorag.teams). Run one with `evorag team run`, talk to one with `evorag team chat`.",
                        no_args_is_help=True)
app.add_typer(teams_app, name="teams")

_AGENT_ROLES = {"evolution": "evolution step", "graph": "chat", "conversation": "chat"}
_EXIT_WORDS = ("/exit", "/quit")
PROMPT = "you> "


def _print_infos(infos: list, as_json: bool, empty: str) -> None:
    if as_json:
        print_json([info.to_dict() for info in infos])
        return
    if not infos:
        out.print(empty)
    # Names, descriptions and errors come from installed packages: printed as text (no markup), one entry each.
    for info in infos:
        if info.kind == "agent":
            kinds = ", ".join(dict.fromkeys(_AGENT_ROLES.get(flow, flow) for flow in info.flows)) or "-"
        else:
            kinds = ", ".join(info.flows) + (f", extends {info.extends}" if info.extends else "")
        state = kinds if info.status == "ok" else "BROKEN"
        out.print(f"{info.name}  ({state})  from {info.origin.label()}", markup=False, highlight=False)
        detail = info.description if info.status == "ok" else info.error
        if detail:
            out.print(f"    {detail}", markup=False, highlight=False)


@agents_app.command("list")
def agents_list(as_json: JsonFlag = False) -> None:
    """Every agent team specs can name, what it can be (an evolution step, a chat participant) and where it
    comes from: built-in, or a distribution's entry point. A plugin that fails to load is listed with its
    error."""
    with service() as rag:
        infos = rag.installed_agents()
    _print_infos(infos, as_json, "No agents.")


@teams_app.command("list")
def teams_list(as_json: JsonFlag = False) -> None:
    """Every team, its flow (evolution, conversation, graph, healing, gaps) and where it comes from. A team whose
    plugin, agents or graph are broken is listed with the reason."""
    with service() as rag:
        infos = rag.installed_teams()
    _print_infos(infos, as_json, "No teams.")


async def _in_daemon_thread(function: Callable[..., Any], *args: Any) -> Any:
    """``function(*args)`` in a daemon thread: a read from the terminal that Ctrl-C cuts short is left behind,
    never waited for at exit (the event loop's own threads would be)."""
    loop = asyncio.get_running_loop()
    future = loop.create_future()

    def settle(setter: Callable[[Any], None], value: Any) -> None:
        if not future.done():
            setter(value)

    def work() -> None:
        try:
            result = function(*args)
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is waiting any more
                loop.call_soon_threadsafe(settle, future.set_exception, exc)
        else:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(settle, future.set_result, result)

    threading.Thread(target=work, name="evorag-chat-input", daemon=True).start()
    return await future


class _Person:
    """The person at the terminal: their messages, their answers to the team, their approvals. None means the
    input ended (Ctrl-D, end of the piped input) or they typed /exit."""

    def __init__(self, *, prompts: bool) -> None:
        self.prompts = prompts  # a person at a terminal: show prompts (else lines come from a script)
        self.closed = False

    def _read_line(self, prompt: str) -> str | None:
        try:
            if self.prompts:
                return input(prompt)
            line = sys.stdin.readline()
            return line.rstrip("\n") if line else None
        except EOFError:
            return None

    async def line(self, prompt: str = PROMPT) -> str | None:
        if self.closed:
            return None
        line = await _in_daemon_thread(self._read_line, prompt)
        if line is None or line.strip() in _EXIT_WORDS:
            self.closed = True
            return None
        return line

    async def answer(self, question: str) -> str | None:
        """The team asks (its question was printed as its message): empty or None leaves the team waiting."""
        return await self.line()

    async def next_message(self) -> str | None:
        while not self.closed:
            line = await self.line()
            if line is not None and line.strip():
                return line
        return None

    async def secret(self, prompt: str) -> str:
        return await _in_daemon_thread(read_secret, prompt)


def _printer(as_json: bool, person: _Person) -> Callable[[object], None]:
    def show(event: object) -> None:
        if as_json:
            record = event_record(event)
            if record is not None:
                sys.stdout.write(escape_json_controls(json.dumps(record, ensure_ascii=False)) + "\n")
                sys.stdout.flush()
            return
        spoken = event_text(event)
        if spoken is None or (person.prompts and spoken[0] == "human"):  # the person typed it themselves
            return
        source, content = spoken
        out.print(f"[bold cyan]{esc(source)}[/]: {esc(content)}", highlight=False)

    return show


def _terminal_modes() -> list | None:
    """The terminal's modes, to put back however the chat ends (a Ctrl-C during the hidden token prompt would
    otherwise leave echo off)."""
    try:
        return termios.tcgetattr(sys.stdin.fileno()) if sys.stdin.isatty() else None
    except (termios.error, OSError, ValueError):
        return None


def _restore_terminal(modes: list | None) -> None:
    if modes is not None:
        with contextlib.suppress(termios.error, OSError, ValueError):
            termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, modes)


@team_app.command("chat")
def team_chat(
    message: Annotated[str | None, typer.Argument(help="Your first message (default: asked at the prompt).")] = None,
    team: Annotated[str, typer.Option("--team", help="A conversation or graph team of `evorag teams list`.")]
    = "conversation",
    max_messages: Annotated[int | None, typer.Option(
        "--max-messages", min=1, max=1000, help="At most this many messages per turn (default: the team's).")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help=YES_HELP)] = False,
    as_json: Annotated[bool, typer.Option(
        "--json", help="For scripts: read messages and answers as lines on stdin, print every message of the chat "
        "as one JSON object per line ({\"source\", \"content\"}); approvals follow the policy (--yes).")] = False,
) -> None:
    """Talk to an agent team: your messages go to the team, its messages come back. When the team asks you,
    answer at the prompt; when it stops, type your next message (the team remembers the chat). A tool the team
    proposes is approved inline by its risk: LOW and MEDIUM with y, HIGH also with the human approval token
    (asked without echo). Ctrl-D, /exit or Ctrl-C ends the chat."""
    person = _Person(prompts=interactive() and not as_json)
    who = principal()
    if person.prompts and not yes:
        # The approver reads the terminal the chat's way; the store applies the risk rules to the answer.
        chat_approver: Approver = TerminalApprover(
            who, ask=person.line, ask_secret=person.secret,
            show=lambda text: out.print(text, markup=False, highlight=False))
    else:
        chat_approver = PolicyApprover(assume_yes=yes, principal=who)
    if person.prompts:
        err.print(f"Talking to team {team}. Ctrl-D or /exit ends the chat.", markup=False, highlight=False)
    modes = _terminal_modes()
    try:
        with service() as rag:
            asyncio.run(_chat(rag, person, message, team=team, max_messages=max_messages, approver=chat_approver,
                              on_event=_printer(as_json, person)))
    except KeyboardInterrupt:
        _restore_terminal(modes)
        err.print("chat ended (interrupted)", markup=False)
        raise typer.Exit(130) from None
    finally:
        _restore_terminal(modes)


async def _chat(rag, person: _Person, first: str | None, *, team: str, max_messages: int | None,
                approver: Approver, on_event: Callable[[object], None]) -> None:
    message = first if first and first.strip() else await person.next_message()
    if message is None:
        return  # nothing was said
    await rag.aconverse(message, team=team, user_input=person.answer, follow_up=person.next_message,
                        approver=approver, on_event=on_event, max_messages=max_messages)
