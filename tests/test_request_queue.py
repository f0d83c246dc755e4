"""The prioritised request queue and the scheduler, on real parts: a temporary EVORAG_HOME, the real SQLite
queue, the real service and its workers, real processes racing for requests, a real site on 127.0.0.1 for
scheduled refreshes, and the real command line."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from doc_fixtures import cli_env, run_cli, write_site
from mcp.shared.memory import create_connected_server_and_client_session
from sitefixtures import send, serve

from evorag.errors import NotFoundError, PermissionDeniedError, UserError
from evorag.mcp_server import build_server
from evorag.principals import Principal, Role
from evorag.service import CrawlRequest, Evorag
from evorag.service._queue import QUEUE_FILE, RequestQueue
from evorag.service._recurrence import Cron, Every, parse_recurrence
from evorag.service._request_kinds import RequestKind, TaskContext, periodic_tasks, register_request_kind

BEFORE = {
    "index.html": ("Widget guide", "<p>The guide to the widget library.</p>"),
    "setup.html": ("Setup", "<h2>Configure</h2><p>Set WIDGET_TIMEOUT to 30 seconds.</p>"),
    "old.html": ("Legacy API", "<p>The legacy API is kept for compatibility.</p>"),
}
AFTER = {
    "index.html": BEFORE["index.html"],
    "setup.html": ("Setup", "<h2>Configure</h2><p>Set WIDGET_TIMEOUT to 60 seconds.</p>"),
    "new.html": ("Plugins", "<p>Widgets load plugins from entry points.</p>"),
}

# A request kind for the tests: it records which service ran it, and does nothing else.
RUNS: list[tuple[str, str]] = []  # (request id, the running service's identity tag)
_RUNS_LOCK = threading.Lock()


async def _record(task: TaskContext) -> dict:
    with _RUNS_LOCK:
        RUNS.append((task.request.id, task.payload.get("tag", "")))
    await asyncio.sleep(float(task.payload.get("sleep", 0)))
    return {"ran": task.request.id}


register_request_kind(RequestKind("test-record", _record, "metrics", describe=lambda p: f"record {p.get('n')}"))


class FakeClock:
    """UTC seconds a test moves by hand (schedules and leases read it)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


def _rag(home: Path, **kwargs) -> Evorag:
    return Evorag(home=home, llm_provider="none", queue_poll_seconds=0.05, **kwargs)


def _serve_until_idle(*services: Evorag, timeout: float = 60.0, workers: int = 2) -> None:
    """Run every service's scheduler and workers (each on its own event loop, in its own thread) until no
    request is queued or running, then stop them."""
    for rag in services:
        rag.requests.start_background(workers=workers)
    try:
        deadline = time.monotonic() + timeout
        while services[0].queue_requests(finished=False):
            assert time.monotonic() < deadline, "the queue did not drain"
            time.sleep(0.05)
    finally:
        for rag in services:
            rag.requests.stop_background()


@pytest.fixture(autouse=True)
def _fresh_runs():
    RUNS.clear()
    yield
    RUNS.clear()


# Persistence


def test_queued_requests_survive_a_restart_in_order_with_their_positions(tmp_path):
    home = tmp_path / "home"
    with _rag(home) as rag:
        ids = [rag.submit_request("test-record", {"n": n}).id for n in range(3)]
        assert (home / QUEUE_FILE).is_file()
    with _rag(home) as again:  # another process, later: nothing was lost
        waiting = again.queue_requests()
        assert [r.id for r in waiting] == ids
        assert [(r.status, r.position, r.payload["n"]) for r in waiting] == [("queued", 1, 0), ("queued", 2, 1),
                                                                             ("queued", 3, 2)]
        assert again.queue_request(ids[1]).summary == "record 1"
        _serve_until_idle(again)
        assert [request_id for request_id, _ in RUNS] == ids
        done = again.queue_request(ids[0])
        assert done.status == "done" and done.result == {"ran": ids[0]} and done.position is None


def test_an_unknown_kind_or_a_bad_payload_is_refused_before_anything_is_queued(tmp_path):
    with _rag(tmp_path / "home") as rag:
        with pytest.raises(UserError, match="unknown request kind 'nope'"):
            rag.submit_request("nope")
        with pytest.raises(UserError, match="empty"):
            rag.submit_request("evolve", {"request": " "})
        with pytest.raises(NotFoundError):
            rag.submit_request("refresh", {"source": "never-crawled"})
        assert rag.queue_requests() == []


# Priority


def test_priority_comes_from_the_role_and_the_evidence_and_equal_priorities_run_in_submission_order(tmp_path):
    reader = Principal("rita", Role.READER, via="python")
    operator = Principal("omar", Role.OPERATOR, via="python")
    admin = Principal("ada", Role.ADMIN, via="python")
    with _rag(tmp_path / "home") as rag:
        def submit(name: str, who: Principal, **how) -> str:
            return rag.submit_request("test-record", {"n": name}, principal=who, **how).id

        ids = {
            "scheduled": submit("scheduled", admin, origin="schedule"),
            "admin's proposal": submit("admin's proposal", admin, origin="proposal", evidence=2),
            "reader 1": submit("reader 1", reader),
            "reader's proposal": submit("reader's proposal", reader, origin="proposal", evidence=40),
            "operator": submit("operator", operator),
            "reader 2": submit("reader 2", reader),
            "admin": submit("admin", admin),
            "reader 3": submit("reader 3", reader),
        }
        # A person's request before any proposal, a proposal before any scheduled run; within a band the
        # role first (an admin's proposal with 2 queries behind it before a reader's with 40), then FIFO.
        expected = ["admin", "operator", "reader 1", "reader 2", "reader 3", "admin's proposal", "reader's proposal",
                    "scheduled"]
        listed = rag.queue_requests()
        assert [r.payload["n"] for r in listed] == expected
        assert [r.position for r in listed] == list(range(1, 9))
        by_name = {r.payload["n"]: r.priority for r in listed}
        assert by_name["admin"] > by_name["operator"] > by_name["reader 1"] == by_name["reader 3"]
        assert by_name["reader 1"] > by_name["admin's proposal"] > by_name["reader's proposal"] > by_name["scheduled"]
        # The workers take them in that order (one worker: one at a time).
        _serve_until_idle(rag, workers=1)
        assert [request_id for request_id, _ in RUNS] == [ids[name] for name in expected]


def test_evidence_orders_proposals_of_the_same_role(tmp_path):
    who = Principal("omar", Role.OPERATOR, via="python")
    with _rag(tmp_path / "home") as rag:
        for evidence in (3, 250, 12, 12):
            rag.submit_request("test-record", {"n": evidence}, origin="proposal", evidence=evidence, principal=who)
        listed = rag.queue_requests()
        assert [r.payload["n"] for r in listed] == [250, 12, 12, 3]
        assert listed[0].priority == 1000 + 100 + 99  # evidence counts up to 99: never into the next band
        assert listed[1].seq < listed[2].seq  # FIFO within a priority


# Cancelling


def test_cancel_a_queued_request_and_clear_errors_for_unknown_and_finished_ones(tmp_path):
    with _rag(tmp_path / "home") as rag:
        keep = rag.submit_request("test-record", {"n": "keep"})
        drop = rag.submit_request("test-record", {"n": "drop"})
        cancelled = rag.cancel_request(drop.id)
        assert cancelled.status == "cancelled" and cancelled.error == "cancelled on request"
        assert rag.queue_request(keep.id).position == 1
        with pytest.raises(UserError, match=f"request {drop.id} is already cancelled"):
            rag.cancel_request(drop.id)
        with pytest.raises(NotFoundError, match="no request 'feedfeedfeed' in the queue"):
            rag.cancel_request("feedfeedfeed")
        with pytest.raises(PermissionDeniedError):
            rag.cancel_request(keep.id, principal=Principal("rita", Role.READER, via="python"))
        _serve_until_idle(rag)
        assert [request_id for request_id, _ in RUNS] == [keep.id]  # the cancelled one never ran
        with pytest.raises(UserError, match=f"request {keep.id} is already done"):
            rag.cancel_request(keep.id)


def test_cancelling_a_running_request_from_another_service_stops_it(tmp_path):
    home = tmp_path / "home"
    with _rag(home) as server, _rag(home) as other:
        slow = server.submit_request("test-record", {"n": "slow", "sleep": 60})
        with server.serve_in_background(workers=1):
            deadline = time.monotonic() + 30
            while other.queue_request(slow.id).status != "running":
                assert time.monotonic() < deadline
                time.sleep(0.05)
            asked = other.cancel_request(slow.id)
            assert asked.status == "running" and asked.cancel_requested
            while other.queue_request(slow.id).status == "running":
                assert time.monotonic() < deadline, "the running request did not stop"
                time.sleep(0.05)
        assert other.queue_request(slow.id).status == "cancelled"


# Claims are atomic


def test_two_services_on_one_home_never_run_the_same_request_twice(tmp_path):
    home = tmp_path / "home"
    with _rag(home) as first, _rag(home) as second:
        ids = [(first if n % 2 else second).submit_request("test-record", {"n": n, "sleep": 0.005}).id
               for n in range(60)]
        _serve_until_idle(first, second, workers=3)
        ran = [request_id for request_id, _ in RUNS]
        assert sorted(ran) == sorted(ids), "a request ran twice or not at all"
        assert {r.status for r in first.queue_requests()} == {"done"}
        owners = {first.queue_request(i).owner.split("/")[0] for i in ids}
        assert owners <= {first.requests.identity, second.requests.identity}


_CLAIMER = """
import sys, time
from pathlib import Path
from evorag.service._queue import RequestQueue
queue = RequestQueue(Path(sys.argv[1]))
sys.stdout.write("ready\\n"); sys.stdout.flush()
sys.stdin.readline()  # every claimer starts at once
taken = []
while True:
    request = queue.claim(sys.argv[2], kinds=["test-record"], now=time.time(), lease_s=600, max_attempts=3)
    if request is None:
        break
    taken.append(request.id)
    queue.finish(request, "done", now=time.time(), result={})
print(" ".join(taken))
"""


def test_processes_racing_for_claims_each_get_distinct_requests(tmp_path):
    path = tmp_path / QUEUE_FILE
    queue = RequestQueue(path)
    asker = {"name": "someone", "role": "operator", "via": "cli"}
    ids = {queue.submit(kind="test-record", payload={"n": n}, principal=asker, priority=2100, origin="user",
                        now=time.time())[0].id for n in range(400)}
    claimers = [subprocess.Popen([sys.executable, "-c", _CLAIMER, str(path), f"claimer-{n}"], text=True,
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE) for n in range(3)]
    for claimer in claimers:
        assert claimer.stdout.readline().strip() == "ready"
    for claimer in claimers:
        claimer.stdin.write("go\n")
        claimer.stdin.flush()
    taken = [claimer.communicate(timeout=120)[0].split() for claimer in claimers]
    everything = [request_id for part in taken for request_id in part]
    assert len(everything) == len(set(everything)) == 400 and set(everything) == ids
    # Two cores shared with other work: a claimer may start late, but at least two must have raced.
    assert sum(1 for part in taken if part) >= 2, "only one claimer took requests: the race did not happen"
    assert {r.status for r in queue.requests(limit=1000)} == {"done"}
    queue.close()


# Recurrence


def test_recurrence_names_and_intervals():
    anchor = dt.datetime(2026, 5, 1, 9, 30, tzinfo=dt.UTC).timestamp()
    daily, hourly, six = parse_recurrence("daily"), parse_recurrence(" Hourly "), parse_recurrence("every 6h")
    assert isinstance(daily, Every) and (daily.seconds, hourly.seconds, six.seconds) == (86_400, 3_600, 21_600)
    assert daily.next_after(anchor, anchor) == anchor + 86_400  # the first run a day after it was set
    assert daily.next_after(anchor + 5 * 86_400 + 1, anchor) == anchor + 6 * 86_400  # missed runs collapse
    assert six.next_after(anchor + 7 * 3_600, anchor) == anchor + 12 * 3_600
    assert parse_recurrence("every 30 minutes").seconds == 1_800 and parse_recurrence("EVERY 2d").text == "every 2d"
    assert parse_recurrence("weekly").seconds == 7 * 86_400


def test_cron_expressions_are_read_in_utc():
    cron = parse_recurrence("0 3 * * *")
    assert isinstance(cron, Cron)
    after = dt.datetime(2026, 5, 1, 3, 0, tzinfo=dt.UTC).timestamp()
    assert dt.datetime.fromtimestamp(cron.next_after(after), dt.UTC) == dt.datetime(2026, 5, 2, 3, 0, tzinfo=dt.UTC)
    weekdays = parse_recurrence("*/15 9-17 * * 1-5")
    friday_evening = dt.datetime(2026, 5, 1, 17, 50, tzinfo=dt.UTC).timestamp()  # 1 May 2026 is a Friday
    assert dt.datetime.fromtimestamp(weekdays.next_after(friday_evening), dt.UTC) == dt.datetime(
        2026, 5, 4, 9, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(("spec", "message"), [
    ("fortnightly", "cannot read the schedule 'fortnightly'"),
    ("", "cannot read the schedule ''"),
    ("every 5 parsecs", "unknown unit 'parsecs'"),
    ("every 30s", "unknown unit 's'"),
    ("every 0h", "out of range"),
    ("every 400d", "out of range"),
    ("61 * * * *", "minute field '61'"),
    ("0 3 * * mon", "day of week field 'mon'"),
    ("0 0 31 2 *", "never matches"),
    ("* * * *", "cannot read the schedule"),
])
def test_a_bad_schedule_is_a_clear_user_error(spec, message):
    with pytest.raises(UserError, match=message) as caught:
        parse_recurrence(spec)
    assert caught.value.hint  # says what is accepted
    assert "\n" not in caught.value.message


# Schedules and the scheduler


@pytest.fixture
def crawled_site(tmp_path):
    """A home holding source ``widget``, crawled from a site served on 127.0.0.1 (private addresses allowed
    explicitly, by the crawl request); the site stays up for the test, which may edit it."""
    root, home = tmp_path / "site", tmp_path / "home"
    write_site(root, BEFORE)
    with serve(root) as site:
        with _rag(home) as rag:
            first = rag.crawl(CrawlRequest(site.url("/index.html"), source="widget", allow_private=True))
        assert first.pages_indexed == 3
        yield root, home, site


def test_the_scheduler_submits_a_due_refresh_exactly_once_and_it_reports_the_changes(crawled_site):
    root, home, _ = crawled_site
    clock = FakeClock(dt.datetime(2026, 5, 1, 9, 30, tzinfo=dt.UTC).timestamp())
    set_at = clock.now
    # Only the refresh's schedule here: periodic tasks (e.g. the hourly anomaly check) would fall due meanwhile.
    quiet = dict.fromkeys(periodic_tasks(), "off")
    with _rag(home, clock=clock, schedules=quiet) as first, _rag(home, clock=clock, schedules=quiet) as second:
        schedule = first.schedule_source("widget", "every 6h")
        assert (schedule.name, schedule.kind, schedule.spec) == ("refresh:widget", "refresh", "every 6h")
        assert schedule.next_due == set_at + 6 * 3_600 and schedule.last_request is None
        clock.now = set_at + 6 * 3_600 - 1
        assert first.requests.scheduler.tick() == [] and second.requests.scheduler.tick() == []
        # Due: two servers on one home tick; one request is submitted.
        clock.now = set_at + 6 * 3_600 + 5
        submitted = first.requests.scheduler.tick() + second.requests.scheduler.tick()
        assert len(submitted) == 1
        [refresh] = submitted
        assert (refresh.kind, refresh.origin, refresh.subject, refresh.status) == ("refresh", "schedule", "widget",
                                                                                  "queued")
        assert refresh.priority < 1000  # maintenance runs after anyone's request
        # No server ran for a day: the occurrences it missed collapse into the one still waiting.
        clock.now = set_at + 30 * 3_600
        assert first.requests.scheduler.tick() == [] and second.requests.scheduler.tick() == []
        [waiting] = first.queue_requests(finished=False)
        assert waiting.id == refresh.id
        schedule = second.source_schedules()["widget"]
        assert schedule.next_due == set_at + 36 * 3_600 and schedule.last_request == refresh.id
        assert schedule.last_status == "queued"
        # The site changed; the refresh runs (by a worker of either server) and reports what changed.
        write_site(root, AFTER)
        _serve_until_idle(second)
        done = first.queue_request(refresh.id)
        assert done.status == "done", done.error
        [change] = done.result["change_reports"]
        pages = {page["url"].rsplit("/", 1)[1]: page for page in change["pages"]}
        # index.html differs only in its links (to new.html instead of old.html): whether that is a change of
        # its text depends on where the fixture site puts links, so it is left out here.
        assert {name: page["change"] for name, page in pages.items() if name != "index.html"} == {
            "new.html": "added", "setup.html": "changed", "old.html": "removed"}
        assert (change["added"], change["removed"]) == (1, 1)
        assert change["changed"] == sum(page["change"] == "changed" for page in pages.values())
        [section] = pages["setup.html"]["sections"]
        assert "+Set WIDGET_TIMEOUT to 60 seconds." in section["diff"]
        assert done.result["changes"]["report_id"] == change["id"]
        assert first.source_schedules()["widget"].last_status == "done"
        # The next occurrence submits a new refresh, once.
        clock.now = set_at + 36 * 3_600
        assert len(first.requests.scheduler.tick() + second.requests.scheduler.tick()) == 1


def test_scheduling_checks_the_source_the_spec_and_the_role(crawled_site):
    _, home, _ = crawled_site
    with _rag(home) as rag:
        with pytest.raises(UserError, match="cannot read the schedule 'sometimes'"):
            rag.schedule_source("widget", "sometimes")
        with pytest.raises(NotFoundError):
            rag.schedule_source("gadget", "daily")
        with pytest.raises(PermissionDeniedError):
            rag.schedule_source("widget", "daily", principal=Principal("rita", Role.READER, via="python"))
        assert rag.source_schedules() == {}
        rag.schedule_source("widget", "daily")
        replaced = rag.schedule_source("widget", "hourly")  # one schedule per source: the new one replaces it
        assert [s.spec for s in rag.schedules() if s.kind == "refresh"] == ["hourly"] and replaced.spec == "hourly"
        assert rag.unschedule_source("widget") is True
        assert rag.unschedule_source("widget") is False
        assert rag.source_schedules() == {}


# The command line


def _json(result: subprocess.CompletedProcess):
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_command_line_schedules_a_refresh_that_evorag_serve_runs_with_a_change_report(tmp_path):
    root, home = tmp_path / "site", tmp_path / "home"
    write_site(root, BEFORE)
    with serve(root) as site:
        crawled = run_cli(home, "crawl", site.url("/index.html"), "--source", "widget", "--allow-private", "--json")
        assert crawled.returncode == 0, crawled.stderr
        scheduled = run_cli(home, "sources", "schedule", "widget", "every 1h")
        assert scheduled.returncode == 0 and "widget refreshes every 1h (UTC); next run" in scheduled.stdout
        [row] = _json(run_cli(home, "sources", "schedules", "--json"))
        assert (row["source"], row["schedule"], row["last_request"]) == ("widget", "every 1h", None)
        assert 3_500 < row["next_run_at"] - time.time() <= 3_600
        bad = run_cli(home, "sources", "schedule", "widget", "now and then")
        assert bad.returncode == 2 and "cannot read the schedule 'now and then'" in bad.stderr
        assert len(bad.stderr.strip().splitlines()) == 2  # the error and its hint

        # An hour passes (the schedule is made due), the site changes, and a headless server runs.
        queue = RequestQueue(home / QUEUE_FILE)
        queue.put_schedule(dataclasses.replace(queue.schedule("refresh:widget"), next_due=time.time() - 1))
        write_site(root, AFTER)
        server = _start_server(home)
        try:
            deadline = time.monotonic() + 120
            while (queue.schedule("refresh:widget").last_status or "queued") in ("queued", "running"):
                assert time.monotonic() < deadline and server.poll() is None, "the scheduled refresh did not run"
                time.sleep(0.2)
        finally:
            assert "stopped" in _stop_server(server)
        queue.close()

    [row] = _json(run_cli(home, "sources", "schedules", "--json"))
    assert row["last_status"] == "done", row
    assert row["next_run_at"] > time.time() + 3_000
    listed = _json(run_cli(home, "queue", "--all", "--json"))
    assert [(r["kind"], r["status"], r["origin"]) for r in listed] == [("refresh", "done", "schedule"),
                                                                        ("crawl", "done", "user")]
    [change] = listed[0]["result"]["change_reports"]
    assert (change["added"], change["removed"]) == (1, 1)
    changes = _json(run_cli(home, "sources", "changes", "widget", "--json"))
    assert changes["reports"][0]["id"] == change["id"]
    assert (changes["reports"][0]["added"], changes["reports"][0]["removed"]) == (1, 1)
    assert "Nothing is queued or running" in run_cli(home, "queue").stdout

    unscheduled = run_cli(home, "sources", "unschedule", "widget")
    assert unscheduled.returncode == 0 and "no longer refreshed" in unscheduled.stdout
    assert _json(run_cli(home, "sources", "schedules", "--json")) == []
    assert "had no schedule" in run_cli(home, "sources", "unschedule", "widget").stdout



def _start_server(home: Path) -> subprocess.Popen:
    server = subprocess.Popen([sys.executable, "-m", "evorag.cli", "serve", "--workers", "1"], text=True,
                              stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                              env=cli_env(home, EVORAG_SCHEDULER_TICK_SECONDS="0.2", EVORAG_QUEUE_POLL_SECONDS="0.1"))
    assert "serving 1 queue worker and the scheduler" in server.stderr.readline()
    return server


def _stop_server(server: subprocess.Popen) -> str:
    server.send_signal(signal.SIGTERM)
    try:
        assert server.wait(timeout=60) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    return server.stderr.read()


def test_a_refresh_running_when_the_server_stops_waits_in_the_queue_for_the_next_server(tmp_path):
    root, home = tmp_path / "site", tmp_path / "home"
    write_site(root, BEFORE)
    requested, release = threading.Event(), threading.Event()

    def slow_index(handler) -> None:
        requested.set()
        release.wait(60)
        send(handler, 200, (root / "index.html").read_bytes(), "text/html")

    with serve(root) as site:
        crawled = run_cli(home, "crawl", site.url("/index.html"), "--source", "widget", "--allow-private")
        assert crawled.returncode == 0, crawled.stderr
        assert run_cli(home, "sources", "schedule", "widget", "daily").returncode == 0
        queue = RequestQueue(home / QUEUE_FILE)
        queue.put_schedule(dataclasses.replace(queue.schedule("refresh:widget"), next_due=time.time() - 1))
        site.routes["/index.html"] = slow_index
        first = _start_server(home)
        try:
            assert requested.wait(120), "the scheduled refresh did not start"
            refresh = queue.schedule("refresh:widget").last_request
            assert queue.get(refresh).status == "running"
        finally:
            stopped = _stop_server(first)
        assert "stopped; unfinished requests wait in the queue" in stopped
        waiting = queue.get(refresh)
        assert (waiting.status, waiting.attempts) == ("queued", 0), waiting
        assert "its server shut down" in waiting.note
        # The next server (or another one on the same home) finishes it; the schedule submitted nothing new.
        release.set()
        del site.routes["/index.html"]
        second = _start_server(home)
        try:
            deadline = time.monotonic() + 120
            while queue.get(refresh).status in ("queued", "running"):
                assert time.monotonic() < deadline and second.poll() is None, "the refresh did not finish"
                time.sleep(0.2)
        finally:
            _stop_server(second)
        done = queue.get(refresh)
        assert done.status == "done" and done.attempts == 1, done.error
        assert [r.id for r in queue.requests(kinds=["refresh"])] == [refresh]
        queue.close()

def test_the_command_line_lists_and_cancels_queued_requests(tmp_path):
    home = tmp_path / "home"
    with _rag(home) as rag:
        first = rag.submit_request("heal", {"description": "the index looks stale"})
        second = rag.submit_request("heal", {"description": "answers got slow"}, origin="proposal", evidence=3)
    listed = run_cli(home, "queue")
    assert listed.returncode == 0
    lines = [line for line in listed.stdout.splitlines() if first.id in line or second.id in line]
    assert len(lines) == 2 and first.id in lines[0] and "#1 in line" in lines[0] and "#2 in line" in lines[1]
    assert [r["id"] for r in _json(run_cli(home, "queue", "--json"))] == [first.id, second.id]
    shown = _json(run_cli(home, "queue", "show", second.id, "--json"))
    assert (shown["position"], shown["origin"], shown["summary"]) == (2, "proposal", "heal: answers got slow")

    cancelled = run_cli(home, "queue", "cancel", first.id)
    assert cancelled.returncode == 0 and f"{first.id} cancelled" in cancelled.stdout
    again = run_cli(home, "queue", "cancel", first.id)
    assert again.returncode == 2 and f"request {first.id} is already cancelled" in again.stderr
    unknown = run_cli(home, "queue", "cancel", "feedfeedfeed")
    assert unknown.returncode == 2 and "no request 'feedfeedfeed' in the queue" in unknown.stderr
    assert [r["id"] for r in _json(run_cli(home, "queue", "--json"))] == [second.id]
    finished = _json(run_cli(home, "queue", "--all", "--json"))
    assert [(r["id"], r["status"]) for r in finished] == [(second.id, "queued"), (first.id, "cancelled")]


# MCP


@pytest.mark.anyio
async def test_mcp_clients_list_the_queue_and_operators_cancel(tmp_path):
    with _rag(tmp_path / "home") as rag:
        first = rag.submit_request("heal", {"description": "the index looks stale"})
        second = rag.submit_request("test-record", {"n": 1}, origin="schedule")
        operator = build_server(rag, principal=Principal("otto", Role.OPERATOR, via="mcp"))
        reader = build_server(rag, principal=Principal("rita", Role.READER, via="mcp"))
        try:
            async with create_connected_server_and_client_session(operator) as client:
                listed = await client.call_tool("list_queue_requests", {})
                assert not listed.isError, listed.content
                requests = listed.structuredContent["requests"]
                assert [(r["id"], r["position"], r["status"]) for r in requests] == [
                    (first.id, 1, "queued"), (second.id, 2, "queued")]
                assert requests[0]["summary"] == "heal: the index looks stale" and "payload" not in requests[0]
                cancelled = await client.call_tool("cancel_queue_request", {"request_id": first.id})
                assert not cancelled.isError and cancelled.structuredContent["status"] == "cancelled"
                again = await client.call_tool("cancel_queue_request", {"request_id": first.id})
                assert again.isError and f"request {first.id} is already cancelled" in again.content[0].text
                unknown = await client.call_tool("cancel_queue_request", {"request_id": "feedfeedfeed"})
                assert unknown.isError and "no request 'feedfeedfeed' in the queue" in unknown.content[0].text
                malformed = await client.call_tool("cancel_queue_request", {"request_id": "../../x"})
                assert malformed.isError
                waiting = (await client.call_tool("list_queue_requests", {})).structuredContent["requests"]
                assert [(r["id"], r["position"]) for r in waiting] == [(second.id, 1)]
                everything = await client.call_tool("list_queue_requests", {"include_finished": True})
                assert [r["status"] for r in everything.structuredContent["requests"]] == ["queued", "cancelled"]
            async with create_connected_server_and_client_session(reader) as client:
                seen = (await client.call_tool("list_queue_requests", {})).structuredContent["requests"]
                assert [r["id"] for r in seen] == [second.id]
                refused = await client.call_tool("cancel_queue_request", {"request_id": second.id})
                assert refused.isError and "needs the operator role" in refused.content[0].text
            assert rag.queue_request(second.id).status == "queued"
        finally:
            await operator.aclose()
            await reader.aclose()
