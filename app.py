"""evorag's chat UI (Chainlit): callbacks only. Start it with `evorag ui`.

Every callback calls the service (evorag.service) and renders with evorag.ui; none holds logic of its own. One Evorag instance serves all sessions of this process; each call acts for the
logged-in principal, whose role the service checks (read again at every use: see ui.session_principal).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging

import chainlit as cl

from evorag import ui
from evorag.approval_token import withhold_from_process
from evorag.errors import EvoragError, PermissionDeniedError
from evorag.principals import Principal, require
from evorag.service import CrawlRequest, Evorag
from evorag.settings import load_settings

log = logging.getLogger("evorag.ui")
# Chainlit's CLI sets the root logger to INFO: AutoGen then logs every message it routes, httpx every page.
for _name in ("autogen_core", "autogen_agentchat", "httpx"):
    logging.getLogger(_name).setLevel(logging.WARNING)
SETTINGS = load_settings()
withhold_from_process()  # this process runs agents and tools: they never inherit the approval token
_state: dict[str, object] = {}


async def _wait_turn(what: str) -> None:
    """Say so when the service's writer slot is taken: the write waits for it (off the event loop)."""
    if service().writer.busy:
        await cl.Message(content=f"Another crawl, deploy or rollback is running: the {what} starts when it "
                                 "ends.").send()


def service() -> Evorag:
    if "service" not in _state:
        _state["service"] = Evorag(SETTINGS)
    return _state["service"]  # type: ignore[return-value]


def principal() -> Principal:
    """The logged-in person, with their role as it is now; refused when the account is gone."""
    user = cl.user_session.get("user")
    metadata = getattr(user, "metadata", None) or {}
    who = ui.session_principal(SETTINGS, service().principals, getattr(user, "identifier", ""), metadata.get("source"))
    if who is None:
        raise PermissionDeniedError("your account was removed or can no longer log in", hint="sign in again")
    return who


async def _error(exc: EvoragError) -> None:
    await cl.ErrorMessage(content=f"**{exc.message}**" + (f"\n\n{exc.hint}" if exc.hint else "")).send()


@cl.on_app_startup
async def warm_up() -> None:
    """Load the embedding model and open the index in the background (5-10 s on 2 cores), so the UI is
    up at once and the first question does not pay for it."""
    rag = service()  # created here, on the loop, so that no callback creates a second one meanwhile

    def load() -> None:
        rag.store  # noqa: B018 - opens the index
        rag.embedder.embed_query("warm up")  # the model itself loads on the first embedding

    async def run() -> None:
        try:
            await asyncio.to_thread(load)
        except EvoragError as exc:  # shown again, with its hint, on the first question
            log.warning("warm-up failed: %s", exc)

    _state["warm_up"] = asyncio.create_task(run())


@cl.on_app_shutdown
async def shut_down() -> None:
    if "service" in _state:
        await asyncio.to_thread(service().close)


@cl.password_auth_callback
async def login(username: str, password: str) -> cl.User | None:
    # scrypt takes ~50 ms: off the event loop.
    found = await asyncio.to_thread(ui.login, SETTINGS, service().principals, username, password)
    if found is None:
        return None
    who, source = found
    return cl.User(identifier=who.name, display_name=f"{who.name} ({who.role})",
                   metadata={"provider": "credentials", "source": source, "role": str(who.role)})


@cl.data_layer
def chat_history():
    return ui.create_data_layer(SETTINGS.home)


@cl.set_starters
async def starters(user=None, language=None) -> list[cl.Starter]:
    from evorag.demo import DEMO_QUESTIONS, DEMO_SOURCE

    sources = await asyncio.to_thread(service().sources)
    question = DEMO_QUESTIONS[0] if any(s.name == DEMO_SOURCE for s in sources) else "How do I get started?"
    crawl_url = next((s.start_url for s in sources if s.start_url), "https://docs.python.org/3/")
    return [
        cl.Starter(label="Ask the documentation", message=question),
        cl.Starter(label="Crawl documentation", message=f"/crawl {crawl_url}"),
        cl.Starter(label="Build a tool", message="/evolve a tool that counts the words in a text"),
        cl.Starter(label="Health check", message="/heal health check"),
        cl.Starter(label="Quality dashboard", message="/metrics"),
    ]


async def _offer_commands() -> None:
    await cl.context.emitter.set_commands([
        {"id": name, "description": description, "icon": icon, "button": False, "persistent": False}
        for name, (_, description, icon) in ui.COMMANDS.items()
    ])


@cl.on_chat_start
async def start() -> None:
    await _offer_commands()


@cl.on_chat_resume
async def resume(thread) -> None:
    await _offer_commands()


@cl.on_message
async def on_message(message: cl.Message) -> None:
    try:
        command = ui.parse_command(message.content, message.command)
        await HANDLERS[command.name](command)
    except EvoragError as exc:
        await _error(exc)
    except Exception:  # the chat must survive any bug; the log has the traceback
        log.exception("command failed: %r", message.content[:200])
        await cl.ErrorMessage(content="Something went wrong inside evorag (the server log has the details).").send()


async def ask(command: ui.Command) -> None:
    who = principal()
    async with cl.Step(name="search and answer", type="retrieval", show_input=False) as step:
        answer = await service().aask(command.argument, principal=who)
        step.output = f"{len(answer.sources_used)} passages · model `{answer.model}` · " + ", ".join(
            f"{name} {ms:.0f} ms" for name, ms in answer.timings_ms.items())
    await cl.Message(content=ui.render_answer(answer)).send()


async def crawl(command: ui.Command) -> None:
    url, source = ui.crawl_arguments(command.argument)
    who = require(principal(), "crawl")  # refused before anything is shown as started
    message = cl.Message(content=ui.render_crawl_progress(url, None))
    await message.send()
    latest: dict[str, object] = {}

    def on_progress(progress) -> None:
        latest["progress"] = dataclasses.replace(progress)

    async def show_progress() -> None:
        shown = None
        while True:
            await asyncio.sleep(0.5)
            if latest.get("progress") is not shown:
                shown = latest["progress"]
                message.content = ui.render_crawl_progress(url, shown)
                await message.update()

    await _wait_turn("crawl")
    ticker = asyncio.create_task(show_progress())
    try:
        report = await service().acrawl(CrawlRequest(url=url, source=source), on_progress=on_progress,
                                        principal=who)
    except Exception:
        message.content = f"Crawl of {url} stopped."
        await message.update()
        raise
    finally:
        ticker.cancel()
    message.content = ui.render_crawl_report(report.to_dict())
    await message.update()


async def evolve(command: ui.Command) -> None:
    who = require(principal(), "evolve")
    approver = ui.ChainlitApprover(principal=who, timeout=SETTINGS.approval_timeout)
    async with ui.AgentSteps("Evolution team") as steps:
        outcome = await service().aevolve(command.argument, docs=command.options.get("docs", []),
                                          approver=approver, on_event=steps, principal=who)
    await cl.Message(content=ui.render_outcome(outcome)).send()


async def heal(command: ui.Command) -> None:
    who = require(principal(), "heal")
    approver = ui.ChainlitApprover(principal=who, timeout=SETTINGS.approval_timeout)
    async with ui.AgentSteps("Healing team") as steps:
        report = await service().aheal(command.argument or "health check", approver=approver, on_event=steps,
                                       principal=who)
    await cl.Message(content=ui.render_healing(report)).send()


async def metrics(command: ui.Command) -> None:
    who, rag = principal(), service()
    report = await asyncio.to_thread(functools.partial(rag.metrics_report, last=200, principal=who))
    figure = ui.metrics_figure(report.history, SETTINGS.trend_window)
    elements = [cl.Plotly(name="answer quality", figure=figure, display="inline", size="large")] if figure else []
    await cl.Message(content=f"## Answer quality\n\n{ui.render_trend(report.trend)}\n\n### Latest answers\n\n"
                             + ui.render_history(report.history), elements=elements).send()
    entries = await asyncio.to_thread(functools.partial(rag.evolution_log, last=500, principal=who))
    await cl.Message(content="## Evolutions\n\n" + ui.render_evolutions(entries)).send()
    await versions(command)


async def versions(command: ui.Command) -> None:
    who = principal()
    checkpoints = await asyncio.to_thread(functools.partial(service().versions, principal=who))
    # The newest checkpoint is the tool set in force: rolling back means choosing an older one. Only those
    # who may roll back get the buttons (the callback checks again).
    actions = [cl.Action(name="rollback", payload={"version": v.id}, label=f"Roll back to {v.id[:8]}",
                         icon="undo-2", tooltip=v.message.splitlines()[0] if v.message else v.id)
               for v in list(reversed(checkpoints))[1:9]] if who.can("rollback") else []
    await cl.Message(content="## Versions\n\n" + ui.render_versions(checkpoints), actions=actions).send()


async def tools(command: ui.Command) -> None:
    manifests = await asyncio.to_thread(functools.partial(service().tools, principal=principal()))
    await cl.Message(content="## Deployed tools\n\n" + ui.render_tools(manifests)).send()


async def sources(command: ui.Command) -> None:
    records = await asyncio.to_thread(functools.partial(service().sources, principal=principal()))
    await cl.Message(content="## Sources\n\n" + ui.render_sources(records)).send()


async def approvals(command: ui.Command) -> None:
    """The pending approvals, each with Approve / Reject for approvers (readers and operators only see them)."""
    who = principal()
    pending = await asyncio.to_thread(functools.partial(service().pending_approvals, principal=who))
    await cl.Message(content=ui.render_pending_header(who, len(pending))).send()
    for request in pending[:20]:
        elements = [cl.Text(name=f"{request.tool}.diff", content=request.diff, language="diff", display="inline")
                    ] if request.diff else []
        actions = [
            cl.Action(name="decide_approval", payload={"id": request.id, "approve": True}, label="Approve",
                      icon="check", tooltip=f"Approve {request.id} and deploy {request.tool}"),
            cl.Action(name="decide_approval", payload={"id": request.id, "approve": False}, label="Reject",
                      icon="x", tooltip=f"Reject {request.id}"),
        ] if who.can("approve") else []
        await cl.Message(content=ui.render_pending(request), elements=elements, actions=actions).send()


async def show_help(command: ui.Command) -> None:
    await cl.Message(content=ui.render_principal(principal()) + "\n\n" + ui.help_text()).send()


HANDLERS = {"ask": ask, "crawl": crawl, "evolve": evolve, "heal": heal, "metrics": metrics, "versions": versions,
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
        result = await asyncio.to_thread(functools.partial(
            service().decide_approval, approval_id, approve=approve, principal=who,
            reason=f"{'approved' if approve else 'rejected'} in the UI by {who.name}"))
    except EvoragError as exc:
        await _error(exc)
        return
    if getattr(result, "status", None) == "deployed":
        await cl.Message(content=f"✓ Approved `{approval_id}`: {ui.render_outcome(result)}").send()
    else:
        await cl.Message(content=f"Approval `{approval_id}` is now **{result.status}**.").send()


@cl.action_callback("rollback")
async def rollback(action: cl.Action) -> None:
    version = str(action.payload.get("version", ""))
    try:
        require(principal(), "rollback")  # before asking: a client can send any action, offered or not
    except EvoragError as exc:
        await _error(exc)
        return
    confirm = await cl.AskActionMessage(
        content=f"Restore the tool set of checkpoint `{version[:12]}`? It is recorded as a new checkpoint.",
        actions=[cl.Action(name="confirm", payload={"confirm": True}, label="Roll back", icon="undo-2"),
                 cl.Action(name="confirm", payload={"confirm": False}, label="Cancel", icon="x")],
        timeout=300,
    ).send()
    if not confirm or not (confirm.get("payload") or {}).get("confirm"):
        await cl.Message(content="Rollback cancelled.").send()
        return
    await _wait_turn("rollback")
    try:
        who = principal()
        result = await asyncio.to_thread(functools.partial(service().rollback, version, principal=who))
        checkpoint = result.version
    except EvoragError as exc:
        await _error(exc)
        return
    await cl.Message(content=f"↩️ Rolled back to `{version[:12]}` (new checkpoint `{checkpoint.id[:12]}`). "
                             f"Tools now: {', '.join(checkpoint.tools) or 'none'}.").send()
