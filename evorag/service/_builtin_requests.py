"""The request kinds evorag itself queues: ``crawl``, ``refresh``, ``evolve``, ``heal``, and the periodic
``health`` and ``anomalies`` tasks. Each runs through the service's use cases, acting as whoever asked (see _request_kinds).

- ``crawl``: a crawl request (the fields of ``CrawlRequest``), checked and completed from the settings when it
  is submitted, checked again when it runs. Writes: one at a time, holding the writer slot.
- ``refresh``: re-crawl a source as its last successful crawl did (same URL, version, limits and filters;
  the catalog's start URL and the settings when no crawl of it is on record). Its result is the crawl report
  plus the change reports the catalog recorded during the refresh (pages added, changed, removed). Writes.
- ``evolve`` / ``heal``: the agent teams. Nobody is there to ask when a queued run needs a decision: risky
  changes wait in the approval queue (``evorag approvals``), as with ``--yes`` off.
- ``health`` (periodic, daily by default): the health checks, changing nothing.
- ``anomalies`` (periodic, hourly by default): the anomaly detector over the answer history; each new alert is
  sent once to the ``anomaly`` webhook subscribers, and one whose stream a health check can explain becomes a
  ``heal`` proposal waiting for approval (the same as `evorag anomalies --notify`; see _proposals).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import TYPE_CHECKING, Any

from evorag.errors import NotFoundError, UserError
from evorag.service._inputs import require_text, validate_source_name
from evorag.service._request_kinds import (
    PeriodicTask,
    RequestKind,
    TaskContext,
    register_periodic_task,
    register_request_kind,
)
from evorag.team_events import event_summary
from evorag.tools.approvals import PolicyApprover
from evorag.tools.types import CrawlRequest

if TYPE_CHECKING:
    from evorag.service._facade import Evorag

_REQUEST_FIELDS = frozenset(field.name for field in dataclasses.fields(CrawlRequest))


def crawl_request(payload: dict) -> CrawlRequest:
    """The crawl a payload asks for (fields this version does not know are ignored)."""
    if not isinstance(payload.get("url"), str):
        raise UserError("a crawl request needs a url")
    fields = {name: value for name, value in payload.items() if name in _REQUEST_FIELDS}
    for name in ("include", "exclude"):
        fields[name] = tuple(fields.get(name) or ())
    return CrawlRequest(**fields)


def planned_payload(service: Evorag, payload: dict) -> dict:
    """Check a crawl request as a crawl would (URL guard, source name, version) and fix what the settings
    decide now (limits, private addresses), so the run does what was asked wherever it runs."""
    plan = service.knowledge.plan_crawl(crawl_request(payload))
    request = crawl_request(payload)
    return {**dataclasses.asdict(request), "url": plan.start_url, "source": plan.source, "version": plan.version,
            "include": list(request.include), "exclude": list(request.exclude),
            "max_pages": plan.options.max_pages, "max_depth": plan.options.max_depth,
            "allow_private": plan.options.allow_private}


async def _crawl(task: TaskContext) -> Any:
    knowledge = task.service.knowledge
    plan = await asyncio.to_thread(knowledge.plan_crawl, crawl_request(task.payload))
    return await knowledge.run_crawl(plan, lambda state: task.progress(dataclasses.asdict(state)))


def _check_refresh(service: Evorag, payload: dict) -> dict:
    service.knowledge.require_source(validate_source_name(str(payload.get("source", ""))))
    return {"source": payload["source"]}


async def _refresh(task: TaskContext) -> dict:
    service, name = task.service, task.payload["source"]
    try:
        record = await asyncio.to_thread(service.knowledge.require_source, name)
    except NotFoundError:
        await asyncio.to_thread(service.requests.drop_schedule_of_removed_source, name)
        raise NotFoundError(f"source {name!r} was removed: its refresh schedule is dropped") from None
    last = await asyncio.to_thread(service.requests.store().last_done, "crawl", name)
    if last is not None:
        asked = dict(last.payload)
    else:  # crawled before the queue kept requests: the catalog's most recent crawl, with today's settings
        newest = max(record.versions, key=lambda v: v.last_crawl_at or 0.0, default=None)
        asked = {"url": (newest.start_url if newest else None) or record.start_url, "source": name,
                 "version": newest.version if newest else None, "selector": record.options.get("selector")}
    started = time.time()  # the catalog stamps change reports with the system clock
    plan = await asyncio.to_thread(service.knowledge.plan_crawl, crawl_request(asked))
    report = await service.knowledge.run_crawl(plan, lambda state: task.progress(dataclasses.asdict(state)))
    result = {**report.to_dict(), "version": plan.version}
    changes = await asyncio.to_thread(service.catalog.change_reports, name, since=started)
    result["change_reports"] = [{key: value for key, value in change.to_dict().items() if key != "pages"}
                                | {"pages": change.pages[:50]} for change in changes
                                if change.version == plan.version]
    return result


def _check_evolve(service: Evorag, payload: dict) -> dict:
    request = require_text(str(payload.get("request") or "").strip(), "request")
    if len(request) < 3:
        raise UserError("the evolution request is empty", hint="say which tool you want, in plain words")
    docs = [service.knowledge.check_url(str(url)) for url in payload.get("docs") or ()]
    return {"request": request, "docs": docs}


async def _evolve(task: TaskContext) -> Any:
    def on_event(event: object) -> None:
        task.progress({"event": event_summary(event, limit=200)})

    return await task.service.aevolve(task.payload["request"], docs=task.payload.get("docs", []),
                                      approver=PolicyApprover(assume_yes=False, principal=task.principal),
                                      on_event=on_event, principal=task.principal)


def _check_heal(service: Evorag, payload: dict) -> dict:
    description = require_text(str(payload.get("description") or "").strip(), "description")
    return {"description": description or "scheduled health check and repair"}


async def _heal(task: TaskContext) -> Any:
    def on_event(event: object) -> None:
        task.progress({"event": event_summary(event, limit=200)})

    return await task.service.aheal(task.payload["description"],
                                    approver=PolicyApprover(assume_yes=False, principal=task.principal),
                                    on_event=on_event, principal=task.principal)


async def _health(task: TaskContext) -> dict:
    task.progress({"stage": "running the health checks"})
    checks = await task.service.ahealth_checks(principal=task.principal)
    return {"ok": all(check.ok for check in checks), "checks": [check.to_dict() for check in checks]}


async def _anomalies(task: TaskContext) -> dict:
    """Watch the metric streams: each new alert goes to the ``anomaly`` webhook subscribers once per home, and
    becomes a heal proposal where a health check applies (the result lists their ids)."""
    task.progress({"stage": "checking the metric streams"})
    report = await asyncio.to_thread(task.service.anomalies, notify=True, principal=task.principal)
    return report.to_dict()


def _crawl_summary(payload: dict) -> str:
    return f"crawl {payload.get('url')} into {payload.get('source')}" + (
        f"@{payload['version']}" if payload.get("version") else "")


register_request_kind(RequestKind("crawl", _crawl, "crawl", writes=True, describe=_crawl_summary,
                                  subject=lambda payload: payload.get("source"), prepare=planned_payload))
register_request_kind(RequestKind("refresh", _refresh, "crawl", writes=True,
                                  describe=lambda payload: f"refresh source {payload.get('source')}",
                                  subject=lambda payload: payload.get("source"), prepare=_check_refresh))
register_request_kind(RequestKind("evolve", _evolve, "evolve", prepare=_check_evolve,
                                  describe=lambda payload: f"evolve: {str(payload.get('request'))[:120]}"))
register_request_kind(RequestKind("heal", _heal, "heal", prepare=_check_heal,
                                  describe=lambda payload: f"heal: {str(payload.get('description'))[:120]}"))
register_periodic_task(PeriodicTask("health", _health, every="daily", operation="heal"))
register_periodic_task(PeriodicTask("anomalies", _anomalies, every="hourly", operation="heal"))
