"""Markdown for the chat: answers with clickable citations, quality reports, crawl, evolution and
healing results, lists. Pure functions of the service's results, so they are tested without a browser.

Text that comes from crawled pages or models is escaped where it would otherwise become markup.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import quote

from evorag.demo import DEMO_QUESTIONS, DEMO_SOURCE
from evorag.principals import Role
from evorag.team_events import SKIP_SOURCES

_CITATION = re.compile(r"\[(\d+(?:\s*[,;]\s*\d+)*)\]")
QUALITY_COLUMNS = (("grounding", "grounding"), ("rougeL", "ROUGE-L"), ("ndcg", "nDCG"),
                   ("code_quality", "code"), ("overall", "overall"))


def safe_url(url: str) -> str:
    """A URL usable inside a Markdown link: no spaces, parentheses or angle brackets left raw."""
    return quote(url or "", safe=":/?#@!$&'*+,;=%-._~[]")


def text_cell(value: object, limit: int = 80) -> str:
    """A value for a Markdown table cell or link label: one line, no pipes, no link syntax."""
    text = " ".join(str(value if value is not None else "").split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return re.sub(r"([\\|\[\]`*_<>])", r"\\\1", text)


def code_span(value: object, limit: int = 80) -> str:
    """An inline code span: one line; content is literal there, so nothing is escaped, only fenced."""
    text = " ".join(str(value if value is not None else "").split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def number(value: Any, digits: int = 2) -> str:
    return "–" if not isinstance(value, (int, float)) or isinstance(value, bool) else f"{value:.{digits}f}"


def when(timestamp: float | None) -> str:
    if not timestamp:
        return "–"
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%d %H:%M")


def link_citations(text: str, citations: Sequence[dict]) -> str:
    """Turn ``[1]`` and ``[1, 2]`` markers into links to the cited pages; unknown numbers stay plain."""
    urls = {int(c["number"]): c.get("url") for c in citations if c.get("url")}

    def replace(match: re.Match) -> str:
        parts = [int(p) for p in re.split(r"[,;]", match.group(1))]
        linked = [f"[{n}]({safe_url(urls[n])})" if n in urls else str(n) for n in parts]
        return "\\[" + ", ".join(linked) + "\\]"

    return _CITATION.sub(replace, text)


def sources_list(citations: Sequence[dict]) -> str:
    lines = []
    for c in citations:
        label = text_cell(" — ".join(part for part in (c.get("title"), c.get("section")) if part) or c.get("url"), 120)
        lines.append(f"- **\\[{c['number']}\\]** [{label}]({safe_url(c.get('url', ''))})")
    return "\n".join(lines)


def quality_table(metrics: dict | None) -> str:
    """The correctness report as one compact table row (– for metrics that do not apply)."""
    if not metrics:
        return ""
    header = "| " + " | ".join(label for _, label in QUALITY_COLUMNS) + " |"
    rule = "|" + "---:|" * len(QUALITY_COLUMNS)
    row = "| " + " | ".join(number(metrics.get(key)) for key, _ in QUALITY_COLUMNS) + " |"
    return f"{header}\n{rule}\n{row}"


def render_answer(answer) -> str:
    """An ``Answer`` (tools.answering) as Markdown: text with linked citations, note, sources, report."""
    parts = [link_citations(answer.answer, answer.citations)]
    if answer.note:
        parts.append(f"> **Note:** {text_cell(answer.note, 300)}")
    if answer.citations:
        parts.append("**Sources**\n\n" + sources_list(answer.citations))
    if answer.metrics:
        parts.append(f"**Correctness report** · model {code_span(answer.model, 60)}\n\n"
                     + quality_table(answer.metrics))
    return "\n\n".join(parts)


def render_answer_step(answer) -> str:
    """The retrieval step's line under an answer: passages, model, timings."""
    timings = ", ".join(f"{name} {ms:.0f} ms" for name, ms in answer.timings_ms.items())
    return f"{len(answer.sources_used)} passages · model {code_span(answer.model, 60)} · {timings}"


def starter_prompts(sources: Sequence) -> list[tuple[str, str]]:
    """(label, message) of the starters: the demo question when the demo is indexed, a crawl of a known source."""
    question = DEMO_QUESTIONS[0] if any(s.name == DEMO_SOURCE for s in sources) else "How do I get started?"
    crawl_url = next((s.start_url for s in sources if s.start_url), "https://docs.python.org/3/")
    return [("Ask the documentation", question), ("Crawl documentation", f"/crawl {crawl_url}"),
            ("Build a tool", "/evolve a tool that counts the words in a text"),
            ("Talk to the agent team", "/team"),
            ("Health check", "/heal health check"), ("Quality dashboard", "/metrics")]


def render_crawl_progress(url: str, progress) -> str:
    if progress is None:
        return f"Crawling {url} … starting"
    last = f"\n\nlast: {code_span(progress.last_url, 120)}" if progress.last_url else ""
    total = f" of {progress.discovered}" if progress.discovered > progress.done else ""
    return (f"Crawling {url} … **{progress.done}**{total} pages done · "
            f"{progress.indexed} indexed · {progress.unchanged} unchanged · {progress.failed} failed · "
            f"{progress.chunks} chunks{last}")


def render_crawl_report(report: dict) -> str:
    summary = (f"Crawled **{text_cell(report['source'])}**: {report['pages_indexed']} pages indexed "
               f"({report['chunks_indexed']} chunks), {report['pages_unchanged']} unchanged, "
               f"{report['pages_removed']} removed, {report['pages_failed']} failed in {report['elapsed_s']:.1f} s")
    lines = [summary]
    failures = report.get("failures") or []
    for failure in failures[:10]:
        lines.append(f"- skipped {code_span(failure.get('url'), 120)}: {text_cell(failure.get('reason'), 160)}")
    if len(failures) > 10:
        lines.append(f"- … and {len(failures) - 10} more")
    return "\n".join(lines)


_STATUS = {"deployed": "✓", "pending": "…", "rejected": "✗"}


def render_outcome(outcome) -> str:
    """An ``EvolutionOutcome``: status, tool, version, then each gate's verdict."""
    head = f"{_STATUS.get(outcome.status, '•')} **{outcome.status}** (risk {outcome.risk})"
    if outcome.tool:
        head += f": tool {code_span(outcome.tool)}"
    if outcome.version_id:
        head += f", version `{outcome.version_id[:12]}`"
    lines = [head]
    if outcome.reason and outcome.status != "deployed":
        lines.append(f"\n{text_cell(outcome.reason, 400)}")
    if outcome.verdicts:
        lines += ["", "| gate | result | detail |", "|---|---|---|"]
        for v in outcome.verdicts:
            lines.append(f"| {v.gate} | {'✓ pass' if v.ok else '✗ fail'} | {text_cell(v.reason or '', 160)} |")
    if outcome.status == "pending" and outcome.approval_id:
        lines.append(f"\nWaiting for a human: approval `{outcome.approval_id}`.")
    return "\n".join(lines)


def render_healing(report) -> str:
    checks = report.after or report.before
    status = "✓ **healthy**" if report.healed else "✗ **not healed**"
    lines = [f"{status} — {text_cell(report.description, 200)}", "", "| check | ok | detail |", "|---|---|---|"]
    lines += [f"| {c.name} | {'✓' if c.ok else '✗'} | {text_cell(c.detail, 160)} |" for c in checks]
    lines += [f"\n- diagnosis: {text_cell(d, 300)}" for d in report.diagnosis]
    lines += [f"- action: {text_cell(a, 300)}" for a in report.actions]
    return "\n".join(lines)


def render_team_mode(on: bool) -> str:
    if on:
        return ("**Team mode on.** Your messages now go to the agent team: the orchestrator, the dependency "
                "validator, the code debugger, the integration tester and the deployer, with you as the human. "
                "Their messages appear as steps; a tool they propose asks for your approval here. "
                "`/ask` still asks the documentation; `/team` again leaves team mode.")
    return "**Team mode off.** Your messages are questions to the documentation again (`/team` goes back)."


def render_team_turn(turn) -> str:
    """The end of a team turn: the team's last word or its question to the person, the tools it proposed."""
    said = [m for m in turn.messages if m.get("source") not in SKIP_SOURCES | {"human"}
            and isinstance(m.get("content"), str) and m["content"].strip()]
    if turn.waiting_for_human:
        question = "\n".join(f"> {line}" for line in (turn.question or "").strip().splitlines()[:40])
        asker = said[-1]["source"] if said else "the team"
        parts = [f"**{code_span(asker, 40)} asks you:**\n\n{question}", "_Reply in your next message._"]
    elif said:
        last = said[-1]
        text = last["content"].replace("TERMINATE", "").strip() or "(done)"
        parts = [f"**{code_span(last['source'], 40)}:** {text}"]
    else:
        parts = ["The team said nothing this turn."]
    parts += [render_outcome(outcome) for outcome in turn.outcomes]
    parts.append(f"_Conversation `{turn.conversation_id[:8]}` · {len(turn.messages)} messages this turn"
                 + (f" · stopped: {text_cell(turn.stop_reason, 80)}" if turn.stop_reason else "") + "_")
    return "\n\n".join(parts)


def render_decision(approval_id: str, result) -> str:
    """What an Approve / Reject click in the /approvals view did."""
    if getattr(result, "status", None) == "deployed":
        return f"✓ Approved `{approval_id}`: {render_outcome(result)}"
    proposal = (getattr(result, "payload", None) or {}).get("proposal")
    if proposal and result.status == "approved":
        return (f"Approval `{approval_id}` is now **approved**: the work of proposal `{proposal}` is queued "
                "(`/proposals` shows its effect when it has run).")
    return f"Approval `{approval_id}` is now **{result.status}**."


def render_rollback_question(version: str) -> str:
    return f"Restore the tool set of checkpoint `{version[:12]}`? It is recorded as a new checkpoint."


def render_rollback(version: str, result) -> str:
    checkpoint = result.version
    return (f"↩️ Rolled back to `{version[:12]}` (new checkpoint `{checkpoint.id[:12]}`). "
            f"Tools now: {', '.join(checkpoint.tools) or 'none'}.")


def render_approval(request) -> str:
    reasons = "".join(f"\n- {text_cell(r, 200)}" for r in request.risk_reasons)
    return (f"### Approval needed: deploy {code_span(request.tool)}\n\n"
            f"**Risk: {request.risk}**{reasons}\n\n{text_cell(request.summary, 500)}\n\n"
            "The change and the sandbox test results are below.")


def render_pending(request) -> str:
    """One pending approval in the /approvals view."""
    reasons = "".join(f"\n- {text_cell(r, 200)}" for r in request.risk_reasons)
    asked = f" · asked by {code_span(request.requested_by, 64)}" if request.requested_by else ""
    return (f"### {code_span(request.tool)} · **Risk: {request.risk}**\n\n"
            f"Approval `{request.id}`{asked} · expires {when(request.expires_at)} UTC{reasons}\n\n"
            f"{text_cell(request.summary, 500)}")


def render_principal(principal) -> str:
    return f"Signed in as {code_span(principal.name, 64)} · role **{principal.role}**"


def render_pending_header(principal, count: int) -> str:
    """The head of the /approvals view: who is looking, how many wait, and whether they may decide."""
    lines = [f"## Pending approvals\n\n{render_principal(principal)}\n"]
    if not count:
        lines.append("Nothing is waiting for approval.")
    elif principal.role >= Role.APPROVER:  # any risk: a logged-in approver is proof of a person for HIGH
        lines.append(f"{count} change(s) wait for a decision: Approve deploys at once, Reject discards.")
    else:
        lines.append(f"{count} change(s) wait for a decision. Only approvers can decide them; you are "
                     f"{principal.role}.")
    return "\n".join(lines)


def render_sources(records: Iterable) -> str:
    rows = [f"| {text_cell(r.name)} | {r.pages} | {r.chunks} | {when(r.last_crawl_at)} | {text_cell(r.start_url, 100)} |"
            for r in records]
    if not rows:
        return "No sources yet. Add one with `/crawl URL`."
    return "\n".join(["| source | pages | chunks | last crawl (UTC) | start URL |", "|---|---:|---:|---|---|", *rows])


def render_tools(manifests: Iterable) -> str:
    """The deployed tools, each with its first example recorded in the sandbox (untrusted, served like the
    summary by ``ToolManifest.served_examples``)."""
    rows = [f"| {code_span(m.name)} | v{m.version} | {m.risk} | "
            f"{text_cell(m.summary(), 120)} | {text_cell((m.served_examples() or ['–'])[0], 100)} |"
            for m in manifests]
    if not rows:
        return "No evolved tools yet. Ask for one with `/evolve REQUEST`."
    return "\n".join(["| tool | version | risk | description | example (recorded in the sandbox) |",
                      "|---|---|---|---|---|", *rows])


def render_versions(versions: Sequence) -> str:
    """Newest first: the top row is the tool set in force."""
    if not versions:
        return "No checkpoints yet."
    lines = ["| version | created (UTC) | change | tools |", "|---|---|---|---|"]
    for index, v in enumerate(reversed(versions)):
        current = " (current)" if index == 0 else ""
        first = v.message.splitlines()[0] if v.message else ""
        lines.append(f"| `{v.id[:12]}`{current} | {when(v.created_at)} | {text_cell(first, 90)} | "
                     f"{text_cell(', '.join(v.tools) or '–', 90)} |")
    return "\n".join(lines)


def render_history(history: Sequence[dict], limit: int = 10) -> str:
    """The newest answers' scores, newest first."""
    if not history:
        return "No answers measured yet: ask a question first."
    lines = ["| # | when (UTC) | question | grounding | ROUGE-L | nDCG | code | overall |",
             "|---:|---|---|---:|---:|---:|---:|---:|"]
    for row in list(reversed(history))[:limit]:
        lines.append(f"| {row.get('id', '')} | {when(row.get('created_at'))} | {text_cell(row.get('query'), 50)} | "
                     + " | ".join(number(row.get(key)) for key, _ in QUALITY_COLUMNS) + " |")
    return "\n".join(lines)


def render_trend(trend) -> str:
    arrow = {"improving": "↗", "declining": "↘", "flat": "→"}.get(trend.direction, "·")
    slope = f", slope {trend.slope:+.4f} per answer" if trend.slope is not None else ""
    return f"{arrow} Overall quality over the last {trend.window} answers: **{trend.direction}**{slope}"


def render_evolutions(entries: Sequence[dict], limit: int = 10) -> str:
    """Finished evolutions from the audit log, newest first."""
    finished = [e for e in entries if e.get("event") == "evolution_finished"][-limit:]
    if not finished:
        return "No evolutions yet."
    lines = ["| when (UTC) | status | gate | reason |", "|---|---|---|---|"]
    for e in reversed(finished):
        lines.append(f"| {when(e.get('ts'))} | {_STATUS.get(e.get('status'), '')} {e.get('status')} | "
                     f"{e.get('gate') or '–'} | {text_cell(e.get('reason') or '', 120)} |")
    return "\n".join(lines)


def _money(value: float | None) -> str:
    return "–" if value is None else f"${value:.4f}"


def _usage_table(title: str, rows: Sequence, *, cost: bool = True) -> str:
    """Rows of model usage (evorag.tools.costs.UsageRow) as a table headed ``title``. The keys are code spans:
    as text, the chat's Markdown would read ``openai:gpt-4o`` as a link to a URL scheme."""
    header = (f"| {title} | calls | failed | prompt tokens | completion tokens |" + (" cost $ |" if cost else "")
              + " mean s |")
    lines = [header, "|---|" + "---:|" * (5 if cost else 4) + "---:|"]
    for r in rows:
        lines.append(f"| {code_span(r.key, 60)} | {r.calls} | {r.failed} | {r.prompt_tokens} | {r.completion_tokens} |"
                     + (f" {r.cost_usd:.4f} |" if cost else "") + f" {number(r.mean_seconds)} |")
    return "\n".join(lines)


def render_status(status) -> str:
    """``Evorag.status()`` (evorag.service's Status) as the health dashboard: a table of the figures, the schedules
    with their last runs, the agents' latency and tokens, and the recent anomalies."""
    r, days = status.resources, status.window_days
    queue = ("unknown" if status.queue_waiting is None
             else f"{status.queue_waiting} waiting, {status.queue_running} running")
    budget = (f" of ${status.budget_usd:.2f} budget, {_money(status.budget_left_usd)} left"
              if status.budget_usd is not None else " (no daily budget)")
    evolutions = status.evolutions
    rate = "–" if evolutions.success_rate is None else f"{evolutions.success_rate:.0%}"
    counts = ", ".join(f"{count} {text_cell(name, 30)}" for name, count in evolutions.by_status.items())
    anomalies = len(status.recent_anomalies)
    lines = ["## Health", "", "| measure | now |", "|---|---|",
             (f"| CPU | {r.get('cpu_percent', 0):.0f}% of {r.get('cpu_count') or '?'} cores "
             f"(load {r.get('load_1m', 0):.2f}) |"),
             f"| memory available | {r.get('memory_available_mb')} MB |",
             f"| disk free | {r.get('disk_free_mb')} MB |",
             f"| queue | {queue} |",
             f"| cost today | {_money(status.cost_today_usd)}{budget} · {status.model_calls_today} model calls |",
             f"| evolutions (last {days} days) | {evolutions.finished} finished, success rate {rate}"
             + (f" ({counts})" if counts else "") + " |",
             f"| anomalies | {anomalies or 'none'} |"]
    lines += ["", "### Schedules", ""]
    if status.schedules is None:
        lines.append("The schedules could not be read.")
    elif not status.schedules:
        lines.append("No schedules (`evorag sources schedule NAME SPEC` adds one).")
    else:
        lines += ["| schedule | every | next run (UTC) | last run (UTC) | last status |", "|---|---|---|---|---|"]
        for s in status.schedules:
            last_status = s.last_status or ("–" if s.last_submitted_at is None else "pruned")
            if s.last_error:
                last_status += f": {s.last_error}"
            lines.append(f"| {code_span(s.name, 60)} | {text_cell(s.spec, 40)} | {when(s.next_due)} | "
                         f"{when(s.last_finished_at or s.last_submitted_at)} | {text_cell(last_status, 100)} |")
    lines += ["", f"### Agents (last {days} days)", ""]
    lines.append(_usage_table("agent", status.agents, cost=False) if status.agents else "No model calls by agents.")
    if status.recent_anomalies:
        lines += ["", "### Recent anomalies", "", "| metric | kind | value | expected | answer |",
                  "|---|---|---:|---:|---:|"]
        lines += [f"| {text_cell(a.metric, 40)} | {text_cell(a.kind, 20)} {text_cell(a.direction, 10)} | "
                  f"{a.value:.3g} | {a.expected:.3g} | {a.record_id or '–'} |" for a in status.recent_anomalies]
    return "\n".join(lines)


def render_costs(report) -> str:
    """A day's ``CostReport`` (evorag.tools.costs): the total against the budget, then by principal, operation
    and model."""
    budget = (f" of ${report.budget_usd:.2f} budget, **{_money(report.remaining_usd)} left**"
              if report.budget_usd is not None else " (no daily budget)")
    lines = [f"## Costs · {report.day} (UTC)", "",
             (f"**{_money(report.total_usd)}**{budget} · {report.calls} model calls · "
             f"{report.prompt_tokens} prompt + {report.completion_tokens} completion tokens")]
    for title, rows in (("principal", report.by_principal), ("operation", report.by_operation),
                        ("model", report.by_model)):
        if rows:
            lines += ["", f"### By {title}", "", _usage_table(title, rows)]
    if any(r.unpriced_calls for r in report.by_model):
        lines += ["", "Models without a price count $0: set `EVORAG_MODEL_PRICES`."]
    return "\n".join(lines)


EVIDENCE_SHOWN = 5  # queries shown per weak topic, missing capability or proposal


def _share(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def _evidence(queries: Sequence[str]) -> str:
    shown = " · ".join(text_cell(q, 100) for q in queries[:EVIDENCE_SHOWN])
    more = len(queries) - EVIDENCE_SHOWN
    return (shown or "–") + (f" (+{more} more)" if more > 0 else "")


def _votes(up: int, down: int) -> str:
    return f"{up} / {down}" if up or down else "–"


def render_usage(analysis) -> str:
    """A period's ``UsageAnalysis`` (evorag.tools.usage_analysis): the totals, the topics, the weak topics with the
    queries behind them and the capabilities asked for but missing. Queries are whatever people typed: escaped."""
    totals = analysis.totals
    interfaces = ", ".join(f"{text_cell(name, 20)} {count}" for name, count in totals.get("by_interface", {}).items())
    lines = [f"## Usage · {when(analysis.since)} to {when(analysis.until)} (UTC)", "",
             (f"**{totals.get('queries', 0)} queries** ({totals.get('searches', 0)} searches, "
              f"{totals.get('asks', 0)} answers, {totals.get('errors', 0)} failed) · by interface: "
              f"{interfaces or 'none'} · mean latency {number(totals.get('mean_latency_ms'), 0)} ms · "
              f"{totals.get('evolution_requests', 0)} evolution requests"), "", "### Topics", ""]
    if analysis.topics:
        lines += ["| topic | queries | before | trend | quality | from the docs | rephrasings | people | 👍 / 👎 |",
                  "|---|---:|---:|---|---:|---:|---:|---:|---:|"]
        lines += [f"| {text_cell(t.label, 90)} | {t.volume} | {t.previous_volume} | {text_cell(t.trend, 10)} | "
                  f"{number(t.quality)} | {_share(t.answered_share)} | {t.rephrasings} | {t.principals} | "
                  f"{_votes(t.thumbs_up, t.thumbs_down)} |" for t in analysis.topics]
    else:
        lines.append("No queries in this period.")
    lines += ["", "### Weak topics (volume × impact)", ""]
    if analysis.weak_topics:
        lines += ["| weak topic | score | impact | why | queries asked |", "|---|---:|---:|---|---|"]
        lines += [f"| {text_cell(w.topic.label, 90)} | {number(w.score)} | {number(w.impact)} | "
                  f"{text_cell('; '.join(w.reasons), 160)} | {_evidence([e['query'] for e in w.evidence])} |"
                  for w in analysis.weak_topics]
    else:
        lines.append("No weak topics.")
    lines += ["", "### Missing capabilities (failures × share failed)", ""]
    if analysis.missing_capabilities:
        lines += ["| missing capability | kind | score | failures | failed | asked |", "|---|---|---:|---:|---:|---|"]
        lines += [f"| {text_cell(m.label, 90)} | {text_cell(m.kind, 20)} | {number(m.score)} | {m.count} | "
                  f"{_share(m.impact)} | {_evidence(m.evidence)} |" for m in analysis.missing_capabilities]
    else:
        lines.append("Nothing asked for was missing.")
    return "\n".join(lines)


_SCORE_LABELS = (("overall", "overall"), ("grounding", "grounding"), ("ndcg", "nDCG"))


def render_effect(proposal) -> str:
    """What an approved proposal did: a crawl's mean scores of its evidence queries before -> after, an
    evolution's request, or why it failed."""
    effect = proposal.effect or {}
    before, after = effect.get("mean_before"), effect.get("mean_after")
    if before or after:
        before, after = before or {}, after or {}
        return " · ".join(f"{label} {number(before.get(key))} → {number(after.get(key))}"
                          for key, label in _SCORE_LABELS)
    if effect.get("evolution_request"):
        return f"evolution request {code_span(effect['evolution_request'], 40)} done"
    if effect.get("heal_request"):
        return f"heal request {code_span(effect['heal_request'], 40)} done (healed: {effect.get('healed')})"
    if proposal.error:
        return text_cell(proposal.error, 160)
    return "–"


def _target(proposal) -> str:
    if proposal.kind == "crawl":
        return ", ".join(code_span(url, 120) for url in proposal.urls) or "–"
    return text_cell(proposal.request, 160)


def render_proposals(principal, proposals: Sequence) -> str:
    """The /proposals view: who is looking, the proposals (newest first) and whether they may decide them."""
    waiting = sum(p.status == "proposed" and bool(p.approval_id) for p in proposals)
    lines = [f"## Proposals\n\n{render_principal(principal)}\n"]
    if not proposals:
        lines.append("No proposals yet. An operator makes them from the usage with `/proposals make`.")
        return "\n".join(lines)
    if not waiting:
        lines.append(f"{len(proposals)} proposal(s); none waits for a decision.")
    elif principal.role >= Role.APPROVER:
        lines.append(f"{len(proposals)} proposal(s), {waiting} waiting for a decision: Approve queues its crawl or "
                     "evolution, Reject means it is never proposed again.")
    else:
        lines.append(f"{len(proposals)} proposal(s), {waiting} waiting for a decision. Only approvers can decide "
                     f"them; you are {principal.role}.")
    # Short columns first, the long target and evidence last (the chat scrolls a wide table sideways). The topic
    # is left out: its label is the most central of the evidence queries, shown anyway.
    lines += ["", "| proposal | kind | score | status | effect (before → after) | target | evidence |",
              "|---|---|---:|---|---|---|---|"]
    lines += [f"| `{p.id}` | {p.kind} | {number(p.score)} | {text_cell(p.status, 20)} | {render_effect(p)} | "
              f"{_target(p)} | {_evidence(p.evidence)} |" for p in proposals]
    return "\n".join(lines)


def render_proposal_decision(proposal) -> str:
    """The message that carries a pending proposal's Approve / Reject buttons."""
    what = (f"crawl {len(proposal.urls)} page(s): {_target(proposal)}" if proposal.kind == "crawl"
            else f"queue a heal run: {_target(proposal)}" if proposal.kind == "heal"
            else f"queue an evolution: {_target(proposal)}")
    return (f"**Proposal `{proposal.id}`** ({text_cell(proposal.topic, 60)}) · score {number(proposal.score)} · "
            f"approval `{proposal.approval_id}`\n\n{what}")


def render_made_proposals(made: Sequence) -> str:
    """What `/proposals make` made."""
    if not made:
        return "No new proposals: nothing in the usage calls for one that was not made before."
    return (f"Made {len(made)} proposal(s), each waiting for approval:\n\n"
            + "\n".join(f"- `{p.id}` {p.kind}: {text_cell(p.topic, 60)} → {_target(p)}" for p in made))
