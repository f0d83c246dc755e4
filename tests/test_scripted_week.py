"""A scripted week of a long-running evorag home, end to end on real parts (issue 13: the loop runs by itself).

A documentation site served on 127.0.0.1 changes during the week; the home refreshes it daily through the
real scheduler, queue and workers (two services on the one home tick, and the home is restarted mid-week);
users ask questions every day through the service (extractive answers: no language model), so the answers
land in the metrics store and the usage log; priced model calls are recorded in the real cost ledger on some
days; a webhook receiver on 127.0.0.1 checks every delivery's HMAC signature. Only time is scripted: an
injected clock moves a day at a time (schedules, leases and the cost ledger read it).

The planted degradation: on day 5 the site drops its page about the frame cache, the scheduled refresh removes
it from the index, and users keep asking about the cache: those answers lose their grounding, which the anomaly
detector must flag, and only then. (Nothing runs the detector on a schedule yet: the test runs it daily as an
operator's ``evorag anomalies --notify`` would; the daily health check is scheduled and must see the drop too.)
Latency is left out of the "nothing on steady days" checks: wall time on a shared machine is not under the test's
control, the answers' scores are (they are deterministic).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import random
import time
from pathlib import Path

from doc_fixtures import write_site
from evorag.tools.webhooks import verify_signature
from sitefixtures import serve
from test_request_queue import _serve_until_idle
from test_webhooks import Receiver

from evorag.principals import Principal, Role
from evorag.service import CrawlRequest, Evorag
from evorag.service._request_kinds import periodic_tasks

DAY = 86_400.0
START = dt.datetime(2026, 6, 1, 8, 0, tzinfo=dt.UTC).timestamp()  # day 0, a Monday morning (UTC)
QUALITY_STREAMS = {"answer_quality", "grounding", "retrieval_ndcg"}
PRICES = {"openai:gpt-4o-mini": {"input": 0.15, "output": 0.6}}  # USD per 1,000 tokens

PAGES = {
    "index.html": ("Widget guide", "<p>The guide to the widget library: install it, configure it, extend it.</p>"),
    "install.html": ("Installing", "<p>Install widgets with pip install widgets. Wheels exist for Linux and macOS.</p>"),
    "timeouts.html": ("Timeouts", "<p>Set WIDGET_TIMEOUT to 30 seconds to bound every request a widget makes.</p>"),
    "caching.html": ("Caching", "<p>Widgets cache rendered frames in a least recently used cache of 512 entries.</p>"),
    "themes.html": ("Themes", "<p>A theme is a TOML file of colours; load one with widgets.load_theme(path).</p>"),
}
QUESTIONS = {
    "install": ["How do I install widgets?", "install widgets with pip", "Which platforms have wheels for widgets?"],
    "timeouts": ["What should WIDGET_TIMEOUT be set to?", "How long is the widget request timeout?",
                 "widget timeout seconds"],
    "caching": ["How large is the frame cache?", "How many entries does the widget cache hold?",
                "frame cache size"],
    "themes": ["How do I load a theme?", "What format is a widget theme file?", "load_theme path"],
}
USERS = [Principal("alice", Role.READER, via="python"), Principal("bob", Role.READER, via="python")]


def site_on(day: int) -> dict[str, tuple[str, str]]:
    """The site as it stands from ``day`` on (its changes are the week's script)."""
    pages = dict(PAGES)
    if day >= 2:  # a page is added
        pages["plugins.html"] = ("Plugins", "<p>Widgets load plugins from the widgets.plugins entry point group.</p>")
    if day >= 3:  # a page is changed
        pages["timeouts.html"] = ("Timeouts", ("<p>Set WIDGET_TIMEOUT to 60 seconds to bound every request a widget "
                                              "makes.</p>"))
    if day >= 5:  # the planted degradation: the page users ask about is removed
        del pages["caching.html"]
    if day >= 7:  # another change, on a day the answers stay steady
        pages["themes.html"] = ("Themes", ("<p>A theme is a TOML file of colours and fonts; load one with "
                                          "widgets.load_theme(path).</p>"))
    return pages


# What each day's refresh must report: {page: change}.
EXPECTED_CHANGES = {1: {}, 2: {"plugins.html": "added"}, 3: {"timeouts.html": "changed"}, 4: {},
                    5: {"caching.html": "removed"}, 6: {}, 7: {"themes.html": "changed"}}
# Priced model calls recorded per day: (calls, prompt tokens each, completion tokens each).
MODEL_CALLS = {1: (2, 1_000, 200), 3: (5, 800, 400), 5: (1, 12_000, 1_000), 6: (3, 500, 100), 7: (4, 2_000, 300)}


def questions_of(day: int, rng: random.Random) -> list[tuple[Principal, str]]:
    """The day's questions: a steady mix of every topic; on day 5 users insist on the cache (gone since that
    day's refresh); from day 6 they stop asking about it."""
    topics = [t for t in QUESTIONS if not (day >= 6 and t == "caching")]
    asked = [rng.choice(QUESTIONS[rng.choice(topics)]) for _ in range(15)]
    if day == 5:
        asked = asked[:5] + [QUESTIONS["caching"][n % 3] for n in range(10)]
    return [(USERS[n % 2], question) for n, question in enumerate(asked)]


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


class SignedReceiver(Receiver):
    """test_webhooks' receiver on 127.0.0.1, checking each delivery's signature as a receiver would (the HMAC
    computed here, independently): ``take`` returns the verified events since the last take; a bad signature
    is kept in ``bad``."""

    def __init__(self) -> None:
        super().__init__()
        self.secret = ""
        self.bad: list[bytes] = []
        self._taken = 0

    def _verified(self, headers: dict, body: bytes) -> bool:
        timestamp, signature = headers.get("x-evorag-timestamp", ""), headers.get("x-evorag-signature", "")
        expected = "sha256=" + hmac.new(self.secret.encode(), timestamp.encode() + b"." + body,
                                        hashlib.sha256).hexdigest()
        return (hmac.compare_digest(signature, expected) and verify_signature(self.secret, timestamp, body, signature)
                and abs(int(timestamp) - time.time()) < 300)

    def take(self) -> list[dict]:
        new = self.requests[self._taken:]
        self._taken += len(new)
        events = []
        for headers, body in new:
            if self._verified({k.lower(): v for k, v in headers.items()}, body):
                events.append(json.loads(body))
            else:
                self.bad.append(body)
        return events


def _rag(home: Path, clock: FakeClock) -> Evorag:
    # Every periodic task (the built-in health check, and any registered since) runs daily this week.
    rag = Evorag(home=home, llm_provider="none", clock=clock, queue_poll_seconds=0.05, model_prices=PRICES,
                 scheduler_tick_seconds=0.2, schedules=dict.fromkeys(periodic_tasks(), "daily"))
    assert rag.parts.costs.clock == clock.time  # the cost ledger's days follow the week's clock too
    return rag


def _page_changes(refresh) -> dict[str, str]:
    return {page["url"].rsplit("/", 1)[1]: page["change"]
            for report in refresh.result["change_reports"] for page in report["pages"]}


def _iso_day(day: int) -> str:
    return dt.datetime.fromtimestamp(START + day * DAY, dt.UTC).date().isoformat()


def _cost(calls: int, prompt: int, completion: int) -> float:
    price = PRICES["openai:gpt-4o-mini"]
    return calls * (prompt * price["input"] + completion * price["output"]) / 1000


def test_a_scripted_week_runs_by_itself(tmp_path):
    root, home = tmp_path / "site", tmp_path / "home"
    clock = FakeClock(START)
    tasks = sorted(periodic_tasks())
    assert "health" in tasks
    rng = random.Random(13)
    write_site(root, site_on(0))
    asked_total = 0
    refreshes: dict[int, str] = {}  # day -> the refresh request that ran
    anomaly_events: dict[int, list[dict]] = {}
    with serve(root) as site, SignedReceiver() as receiver:
        server, other = _rag(home, clock), _rag(home, clock)  # two services on one home
        try:
            # Day 0: crawl the site, refresh it daily, subscribe a receiver.
            hook, receiver.secret = server.add_webhook(receiver.url, ["crawl_finished", "anomaly"],
                                                       allow_private=True)
            first = server.crawl(CrawlRequest(site.url("/index.html"), source="widget", allow_private=True))
            assert first.pages_indexed == 5
            schedule = server.schedule_source("widget", "daily")
            assert schedule.next_due == START + DAY
            _serve_until_idle(server, timeout=120.0)  # the servers start: the periodic tasks get their schedules
            assert {s.name for s in other.schedules()} == {"refresh:widget", *(f"task:{t}" for t in tasks)}
            assert server.parts.webhooks.flush(30)
            [crawled] = receiver.take()
            assert crawled["event"] == "crawl_finished" and crawled["data"]["pages_indexed"] == 5

            for day in range(1, 8):
                clock.now = START + day * DAY + 60
                write_site(root, site_on(day))
                # Both services tick (twice each): each due schedule is submitted once.
                submitted = [r for _ in range(2) for rag in (server, other) for r in rag.requests.scheduler.tick()]
                assert sorted(r.kind for r in submitted) == sorted(["refresh", *tasks]), (day, submitted)
                if day == 4:
                    # A restart mid-week, the day's requests queued and not run yet: the servers stop, an hour
                    # passes with none running, new ones start on the same home. They submit nothing again and
                    # run what waits, once.
                    server.close()
                    other.close()
                    clock.now += 3_600
                    server, other = _rag(home, clock), _rag(home, clock)
                    assert [r.id for r in server.queue_requests(finished=False)] == [r.id for r in submitted]
                    assert server.requests.scheduler.tick() == [] and other.requests.scheduler.tick() == []
                _serve_until_idle(server, timeout=120.0)
                [refresh] = [r for r in submitted if r.kind == "refresh"]
                done = other.queue_request(refresh.id)
                assert (done.status, done.attempts, done.origin) == ("done", 1, "schedule"), (day, done.error)
                assert _page_changes(done) == EXPECTED_CHANGES[day], (day, done.result)
                counted = {kind: sum(report[kind] for report in done.result["change_reports"])
                           for kind in ("added", "changed", "removed")}
                assert counted == {kind: list(EXPECTED_CHANGES[day].values()).count(kind) for kind in counted}, day
                if day == 3:
                    [report] = done.result["change_reports"]
                    [section] = report["pages"][0]["sections"]
                    assert "+Set WIDGET_TIMEOUT to 60 seconds" in section["diff"], section
                refreshes[day] = refresh.id

                # The users' questions of the day, through the service.
                for who, question in questions_of(day, rng):
                    server.ask(question, principal=who)
                    asked_total += 1
                if day in MODEL_CALLS:
                    calls, prompt, completion = MODEL_CALLS[day]
                    for _ in range(calls):
                        server.parts.costs.record(model="openai:gpt-4o-mini", prompt_tokens=prompt,
                                                  completion_tokens=completion, principal="alice", operation="ask")
                # The operator's daily look at the answers (`evorag anomalies --notify`).
                server.anomalies(notify=True)
                assert server.parts.webhooks.flush(30)
                events = receiver.take()
                [finished] = [e for e in events if e["event"] == "crawl_finished"]
                assert finished["data"]["source"] == "widget" and finished["data"]["complete"], finished
                removed = {5: 1}.get(day, 0)
                assert finished["data"]["pages_removed"] == removed
                anomaly_events[day] = [e["data"] for e in events if e["event"] == "anomaly"
                                       and e["data"]["metric"] in QUALITY_STREAMS]
                assert len(events) == 1 + len([e for e in events if e["event"] == "anomaly"])

            # Anomalies: the planted day only, downwards, on answers about the removed page.
            assert {day for day, found in anomaly_events.items() if found} == {5}, anomaly_events
            planted = anomaly_events[5]
            assert all(a["direction"] == "down" for a in planted)
            assert {"grounding"} <= {a["metric"] for a in planted}
            assert all(a["query"] in QUESTIONS["caching"] for a in planted if a["metric"] == "grounding")
            assert receiver.bad == []

            # Nothing ran twice: one refresh and one run of each periodic task per day, the restart included.
            everything = other.queue_requests(limit=1000)
            refresh_runs = [r for r in everything if r.kind == "refresh"]
            assert sorted(r.id for r in refresh_runs) == sorted(refreshes.values())
            assert all((r.status, r.attempts) == ("done", 1) for r in refresh_runs)
            for task in tasks:
                runs = [r for r in everything if r.kind == task]
                assert all((r.status, r.attempts) == ("done", 1) for r in runs), (task, runs)
                assert sorted(int((r.created_at - START) // DAY) for r in runs) == list(range(1, 8)), task
            assert [r.kind for r in everything if r.kind not in ("refresh", *tasks)] == ["crawl"]
            # The daily health check runs before the day's questions: on day 6 it sees day 5's failing answers.
            failing = {int((r.created_at - START) // DAY): sorted(c["name"] for c in r.result["checks"] if not c["ok"])
                       for r in everything if r.kind == "health"}
            assert failing == {day: ["answer_quality"] if day == 6 else [] for day in range(1, 8)}, failing

            # Costs per day, as recorded.
            for day in range(8):
                report = server.costs(day=_iso_day(day))
                calls, prompt, completion = MODEL_CALLS.get(day, (0, 0, 0))
                assert (report.calls, report.prompt_tokens, report.completion_tokens) == (
                    calls, calls * prompt, calls * completion), day
                assert abs(report.total_usd - _cost(calls, prompt, completion)) < 1e-6, day

            # The status agrees with all of it.
            status = other.status(days=7)
            assert (status.queue_waiting, status.queue_running) == (0, 0)
            schedules = {s.name: s for s in status.schedules}
            assert set(schedules) == {"refresh:widget", *(f"task:{t}" for t in tasks)}
            assert {s.last_status for s in schedules.values()} == {"done"}
            assert schedules["refresh:widget"].next_due == START + 8 * DAY
            assert abs(status.cost_today_usd - _cost(*MODEL_CALLS[7])) < 1e-6
            assert status.model_calls_today == MODEL_CALLS[7][0]
            assert [(cost.day, cost.calls) for cost in status.cost_by_day] == [
                (_iso_day(day), MODEL_CALLS.get(day, (0,))[0]) for day in range(1, 8)]
            for cost in status.cost_by_day:
                day = round((dt.datetime.fromisoformat(cost.day).replace(tzinfo=dt.UTC).timestamp() - START) / DAY)
                assert abs(cost.cost_usd - _cost(*MODEL_CALLS.get(day, (0, 0, 0)))) < 1e-6, cost
            listed = [a for a in status.recent_anomalies if a.metric in QUALITY_STREAMS]
            assert sorted((a.metric, a.record_id) for a in listed) == sorted((a["metric"], a["record_id"]) for a in planted)

            # The week's questions are in the usage analysis, by who asked them (the usage log follows the
            # scripted clock), and the one topic the docs stopped answering is a weak topic, its evidence the
            # questions about the removed page.
            usage = server.usage_report(since="30d").analysis
            assert usage.totals["asks"] == asked_total == 7 * 15
            assert usage.totals["by_principal"] == {"alice": 7 * 8, "bob": 7 * 7}
            assert sum(topic.volume for topic in usage.topics) == asked_total
            [unanswered] = [t for t in usage.topics if t.answered_share is not None and t.answered_share < 1]
            assert set(unanswered.queries) <= set(QUESTIONS["caching"]), unanswered
            assert unanswered.id in [w.topic.id for w in usage.weak_topics]
            # Every delivery went through at the first attempt; the hook is still enabled.
            log = server.webhook_log(hook_id=hook.id, last=1000)
            assert [a.event for a in log].count("crawl_finished") == 8
            assert [a.event for a in log].count("anomaly") >= len(planted)
            assert all(a.ok and a.attempt == 1 for a in log)
            [listed_hook] = server.list_webhooks()
            assert listed_hook.enabled and listed_hook.failures == 0
        finally:
            server.close()
            other.close()
