"""What the person typed: a slash command (``/crawl URL``) or, by default, a question (in team mode: a message to
the agent team)."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

from evorag.errors import UserError

# id -> (usage, description, lucide icon). The ids double as Chainlit composer commands.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "ask": ("/ask QUESTION", "Answer from the indexed docs, with citations and a quality report", "message-circle"),
    "crawl": ("/crawl URL [SOURCE]", "Crawl and index a documentation site (re-crawls are incremental)", "globe"),
    "evolve": ("/evolve REQUEST [--docs URL]", "Let the agent team build, test and (after approval) deploy a tool",
               "sparkles"),
    "heal": ("/heal [PROBLEM]", "Run the health checks and repair what fails", "heart-pulse"),
    "team": ("/team [MESSAGE]", "Talk to the agent team: team mode on or off (in it, your messages go to the team)",
             "users"),
    "metrics": ("/metrics", "Answer quality over time, the trend, evolutions and versions", "chart-line"),
    "status": ("/status", "Health: CPU, memory, disk, queue, schedules, evolutions, agents, cost by day", "activity"),
    "costs": ("/costs", "Today's model cost by principal and operation, the budget and what is left (operators)",
              "coins"),
    "usage": ("/usage [SINCE]", "What people asked (default: the last 7d): topics, weak topics, missing tools",
              "chart-bar"),
    "proposals": ("/proposals [make]", "Proposals from the usage and their effect; `make` (operators) makes new ones",
                  "lightbulb"),
    "versions": ("/versions", "Checkpoints of the deployed tools, with rollback", "history"),
    "approvals": ("/approvals", "Changes waiting for approval: approvers approve or reject them", "shield-check"),
    "tools": ("/tools", "Tools the agents have deployed", "wrench"),
    "sources": ("/sources", "Indexed documentation sources", "library"),
    "help": ("/help", "What each command does", "circle-help"),
}


@dataclass(slots=True)
class Command:
    name: str
    argument: str = ""
    options: dict[str, list[str]] = field(default_factory=dict)


def parse_command(text: str, command: str | None = None, *, team_mode: bool = False) -> Command:
    """Read one chat message. ``command`` is the id of a command picked in Chainlit's composer menu.

    Plain text is a question, or in ``team_mode`` a message to the team. Raises UserError for an unknown
    ``/command`` or a command missing its argument, with the usage in the hint.
    """
    text = (text or "").strip()
    name = (command or "").strip().lower()
    if not name:
        if not text.startswith("/"):
            return Command("team" if team_mode else "ask", text) if text else Command("help")
        head, _, text = text[1:].partition(" ")
        name, text = head.lower(), text.strip()
    if name not in COMMANDS:
        raise UserError(f"unknown command /{name}", hint="type /help to see the commands")
    if name in ("ask", "crawl", "evolve") and not text:
        raise UserError(f"/{name} needs an argument", hint=f"usage: {COMMANDS[name][0]}")
    if name == "proposals" and text.lower() not in ("", "make"):
        raise UserError(f"/proposals takes no argument or `make`, got {text!r}", hint=f"usage: {COMMANDS[name][0]}")
    if name == "usage" and len(text.split()) > 1:
        raise UserError("/usage takes one period, such as 7d, 24h or 2024-05-01", hint=f"usage: {COMMANDS[name][0]}")
    if name == "evolve":
        return _with_docs(text)
    return Command(name, text)


def _with_docs(text: str) -> Command:
    """``/evolve REQUEST --docs URL --docs URL``: the URLs are documentation to learn from."""
    try:
        words = shlex.split(text)
    except ValueError:  # an odd quote in a free-text request: keep the words as they are
        words = text.split()
    request, docs = [], []
    iterator = iter(words)
    for word in iterator:
        if word == "--docs":
            url = next(iterator, None)
            if url is None:
                raise UserError("--docs needs a URL", hint=f"usage: {COMMANDS['evolve'][0]}")
            docs.append(url)
        else:
            request.append(word)
    if not request:
        raise UserError("/evolve needs a request", hint=f"usage: {COMMANDS['evolve'][0]}")
    return Command("evolve", " ".join(request), {"docs": docs} if docs else {})


def crawl_arguments(argument: str) -> tuple[str, str | None]:
    """``URL [SOURCE]`` -> (url, source)."""
    parts = argument.split()
    if not parts or len(parts) > 2:
        raise UserError("/crawl takes a URL and an optional source name", hint=f"usage: {COMMANDS['crawl'][0]}")
    return parts[0], parts[1] if len(parts) == 2 else None


def help_text() -> str:
    lines = ["| command | what it does |", "|---|---|"]
    lines += [f"| `{usage}` | {description} |" for usage, description, _ in COMMANDS.values()]
    return "Type a question to ask it, or use a command:\n\n" + "\n".join(lines)
