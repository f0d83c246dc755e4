"""evorag's chat UI (Chainlit): callbacks only. Start it with `evorag ui`.

Every callback parses what it got, calls one service method (evorag.service) and renders the result with evorag.ui.
One Evorag instance serves all sessions of this process; each call acts for the logged-in principal, whose role
the service checks (read again at every use: see ``principal``).
"""

from __future__ import annotations

import asyncio
import logging

import chainlit as cl

from evorag import ui
from evorag.approval_token import withhold_from_process
from evorag.errors import EvoragError, PermissionDeniedError
from evorag.principals import Principal, require
from evorag.service import CrawlRequest, Evorag
from evorag.settings import load_settings
from evorag.ui._feedback import give_feedback, remember_answer
from evorag.ui.history import create_data_layer

log = logging.getLogger("evorag.ui")
# Chainlit's CLI sets the root logger to INFO: AutoGen then logs every message it routes, httpx every page.
for _name in ("autogen_core", "autogen_agentchat", "httpx"):
    logging.getLogger(_name).setLevel(logging.WARNING)
SETTINGS = load_settings()
withhold_from_process()  # this process runs agents and tools: they never inherit the approval token
SERVICE = Evorag(SETTINGS)  # builds nothing yet: every part is built on first use
TEAM_MODE, CONVERSATION = "team_mode", "team_conversation"  # this chat's team mode, and its conversation id
ANSWERS = "answers"  # this chat's answer ids by message id (evorag.ui._feedback)
_background: set[asyncio.Task] = set()


async def _wait_turn(what: str) -> None:
    """Say so when the service's writer slot is taken: the write waits for it (off the event loop)."""
    if SERVICE.writer.busy:
        await ui.say(f"Another crawl, deploy or rollback is running: the {what} starts when it ends.")


def principal() -> Principal:
    """The logged-in person, with their role as it is now; refused when the account is gone."""
    user = cl.user_session.get("user")
    metadata = getattr(user, "metadata", None) or {}
    who = SERVICE.session_principal(getattr(user, "identifier", ""), metadata.get("source"))
    if who is None:
        raise PermissionDeniedError("your account was removed or can no longer log in", hint="sign in again")
    return who


@cl.on_app_startup
async def warm_up() -> None:
    """Load the embedding model and open the index in the background (5-10 s on 2 cores), so the UI is
    up at once and the first question does not pay for it."""

    async def run() -> None:
        try:
            await asyncio.to_thread(SERVICE.warm_up)
        except EvoragError as exc:  # shown again, with its hint, on the first question
            log.warning("warm-up failed: %s", exc)
        # A long-running server: the scheduler and the request queue's workers run beside the UI.
        try:
            await asyncio.to_thread(SERVICE.start_background)
        except EvoragError as exc:
            log.warning("the request queue could not start: %s", exc)

    _background.add(asyncio.create_task(run()))  # referenced: the loop keeps only a weak reference to tasks


@cl.on_app_shutdown
async def shut_down() -> None:
    await asyncio.to_thread(SERVICE.stop_background)
    await asyncio.to_thread(SERVICE.close)


@cl.password_auth_callback
async def login(username: str, password: str) -> cl.User | None:
    found = await asyncio.to_thread(SERVICE.authenticate, username, password)  # scrypt: ~50 ms
    if found is None:
        return None
    who = found.principal
    return cl.User(identifier=who.name, display_name=f"{who.name} ({who.role})",
                   metadata={"provider": "credentials", "source": found.source, "role": str(who.role)})


@cl.data_layer
def chat_history():
    return create_data_layer(SETTINGS.home)


@cl.set_starters
async def starters(user=None, language=None) -> list[cl.Starter]:
    return ui.starters(await asyncio.to_thread(SERVICE.sources))


@cl.on_chat_start
async def start() -> None:
    await ui.offer_commands()


@cl.on_chat_resume
async def resume(thread) -> None:
    await ui.offer_commands()


@cl.on_message
async def on_message(message: cl.Message) -> None:
    try:
        command = ui.parse_command(message.content, message.command, team_mode=bool(cl.user_session.get(TEAM_MODE)))
        SERVICE.api_call(principal())  # past EVORAG_API_CALLS_PER_MINUTE: an error saying when to try again
        await HANDLERS[command.name](command)
    except EvoragError as exc:
        await ui.show_error(exc)
    except Exception:  # the chat must survive any bug; the log has the traceback
        log.exception("command failed: %r", message.content[:200])
        await cl.ErrorMessage(content="Something went wrong inside evorag (the server log has the details).").send()


async def ask(command: ui.Command) -> None:
    who = principal()
    async with cl.Step(name="search and answer", type="retrieval", show_input=False) as step:
        answer = await SERVICE.aask(command.argument, principal=who)
        step.output = ui.render_answer_step(answer)
    message = cl.Message(content=ui.render_answer(answer))
    await message.send()
    # The thumbs under this message rate this answer (on_feedback below).
    remember_answer(_answers(), message.id, answer.answer_id)


def _answers() -> dict[str, int]:
    """This chat session's answers by message id, for its feedback buttons."""
    answers = cl.user_session.get(ANSWERS)
    if answers is None:
        answers = {}
        cl.user_session.set(ANSWERS, answers)
    return answers


@cl.on_feedback
async def feedback(given) -> None:
    """A thumbs up or down under an answer (Chainlit has stored it in the chat history): evorag feedback."""
    try:
        await give_feedback(SERVICE, principal(), given, _answers())
    except EvoragError as exc:
        log.warning("feedback not recorded: %s", exc.message)


async def crawl(command: ui.Command) -> None:
    url, source = ui.crawl_arguments(command.argument)
    who = require(principal(), "crawl")  # refused before anything is shown as started
    await _wait_turn("crawl")
    async with ui.CrawlProgressMessage(url) as progress:
        report = await SERVICE.acrawl(CrawlRequest(url=url, source=source), on_progress=progress, principal=who)
    await progress.done(report)


async def evolve(command: ui.Command) -> None:
    who = require(principal(), "evolve")
    approver = ui.ChainlitApprover(principal=who, timeout=SETTINGS.approval_timeout)
    async with ui.AgentSteps("Evolution team") as steps:
        outcome = await SERVICE.aevolve(command.argument, docs=command.options.get("docs", []),
                                        approver=approver, on_event=steps, principal=who)
    await ui.say(ui.render_outcome(outcome))


async def heal(command: ui.Command) -> None:
    who = require(principal(), "heal")
    approver = ui.ChainlitApprover(principal=who, timeout=SETTINGS.approval_timeout)
    async with ui.AgentSteps("Healing team") as steps:
        report = await SERVICE.aheal(command.argument or "health check", approver=approver, on_event=steps,
                                     principal=who)
    await ui.say(ui.render_healing(report))


async def team(command: ui.Command) -> None:
    """``/team`` turns team mode on or off; a message (``/team MESSAGE``, or any text in team mode) is one turn of
    this chat's conversation with the agent team: their messages stream as steps, a tool they propose asks for
    approval here, and when they ask the person, the person's next message is the answer."""
    who = require(principal(), "converse")
    if not command.argument:
        cl.user_session.set(TEAM_MODE, not cl.user_session.get(TEAM_MODE))
        await ui.say(ui.render_team_mode(bool(cl.user_session.get(TEAM_MODE))))
        return
    cl.user_session.set(TEAM_MODE, True)
    approver = ui.ChainlitApprover(principal=who, timeout=SETTINGS.approval_timeout)
    async with ui.AgentSteps("Agent team") as steps:
        turn = await SERVICE.atalk(command.argument, conversation_id=cl.user_session.get(CONVERSATION),
                                   approver=approver, on_event=steps, principal=who)
    cl.user_session.set(CONVERSATION, turn.conversation_id)
    await ui.say(ui.render_team_turn(turn))


async def metrics(command: ui.Command) -> None:
    who = principal()
    report = await asyncio.to_thread(lambda: SERVICE.metrics_report(last=200, principal=who))
    evolutions = await asyncio.to_thread(lambda: SERVICE.evolution_log(last=500, principal=who))
    await ui.show_quality(report, evolutions, SETTINGS.trend_window)
    await versions(command)


async def status(command: ui.Command) -> None:
    """The health dashboard (reader role, checked by the service)."""
    who = principal()
    await ui.show_status(await asyncio.to_thread(lambda: SERVICE.status(principal=who)))


async def costs(command: ui.Command) -> None:
    """Today's model costs by principal and operation (operator role: refused before anything is read)."""
    who = require(principal(), "costs")
    await ui.show_costs(await asyncio.to_thread(lambda: SERVICE.costs(principal=who)))


async def usage(command: ui.Command) -> None:
    """``/usage [SINCE]``: topics, weak topics and missing capabilities of the period (reader role, checked by the
    service; embedding the queries takes a moment, off the event loop)."""
    who = principal()
    since = command.argument or None
    report = await asyncio.to_thread(lambda: SERVICE.usage_report(since=since, principal=who))
    await ui.show_usage(report.analysis)


async def proposals(command: ui.Command) -> None:
    """``/proposals``: the proposals, with Approve / Reject for approvers (reader role); ``/proposals make``
    makes new ones from the usage first (operator role: refused before anything is analysed)."""
    who = principal()
    if command.argument.lower() == "make":
        require(who, "gaps")
        made = await asyncio.to_thread(lambda: SERVICE.make_proposals(principal=who))
        await ui.say(ui.render_made_proposals(made))
    listed = await asyncio.to_thread(lambda: SERVICE.list_proposals(limit=50, principal=who))
    await ui.show_proposals(listed, who)


async def versions(command: ui.Command) -> None:
    who = principal()
    await ui.show_versions(await asyncio.to_thread(lambda: SERVICE.versions(principal=who)), who)


async def tools(command: ui.Command) -> None:
    who = principal()
    manifests = await asyncio.to_thread(lambda: SERVICE.tools(principal=who))
    await ui.say("## Deployed tools\n\n" + ui.render_tools(manifests))


async def sources(command: ui.Command) -> None:
    who = principal()
    records = await asyncio.to_thread(lambda: SERVICE.sources(principal=who))
    await ui.say("## Sources\n\n" + ui.render_sources(records))


async def approvals(command: ui.Command) -> None:
    """The pending approvals, each with Approve / Reject for approvers (readers and operators only see them)."""
    who = principal()
    pending = await asyncio.to_thread(lambda: SERVICE.pending_approvals(principal=who))
    await ui.say(ui.render_pending_header(who, len(pending)))
    for request in pending[:20]:
        await ui.show_pending_approval(request, who)


async def show_help(command: ui.Command) -> None:
    await ui.say(ui.render_principal(principal()) + "\n\n" + ui.help_text())


HANDLERS = {"ask": ask, "crawl": crawl, "evolve": evolve, "heal": heal, "team": team, "metrics": metrics,
            "status": status, "costs": costs, "usage": usage, "proposals": proposals, "versions": versions,
            "approvals": approvals, "tools": tools, "sources": sources, "help": show_help}


@cl.action_callback("decide_approval")
async def decide_approval(action: cl.Action) -> None:
    """Approve or reject from the /approvals view. The role is checked again here: a client can send any
    action, offered or not. A logged-in approver's click is a person's decision (HIGH risk included)."""
    approval_id, approve = str(action.payload.get("id", "")), action.payload.get("approve") is True
    try:
        who = principal()
        if approve:
            await _wait_turn("deploy")  # approving deploys: a write, like a crawl or a rollback
        verb = "approved" if approve else "rejected"
        result = await asyncio.to_thread(lambda: SERVICE.decide_approval(
            approval_id, approve=approve, principal=who, reason=f"{verb} in the UI by {who.name}"))
    except EvoragError as exc:
        await ui.show_error(exc)
        return
    await ui.say(ui.render_decision(approval_id, result))


@cl.action_callback("rollback")
async def rollback(action: cl.Action) -> None:
    version = str(action.payload.get("version", ""))
    try:
        require(principal(), "rollback")  # before asking: a client can send any action, offered or not
        if not await ui.confirm_rollback(version):
            await ui.say("Rollback cancelled.")
            return
        await _wait_turn("rollback")
        who = principal()
        result = await asyncio.to_thread(lambda: SERVICE.rollback(version, principal=who))
    except EvoragError as exc:
        await ui.show_error(exc)
        return
    await ui.say(ui.render_rollback(version, result))
