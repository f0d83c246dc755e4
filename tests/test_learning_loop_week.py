"""The learning loop's week (issue 13, "Done means"): a docs site served on 127.0.0.1 and indexed only in part,
a scripted week of questions, and the loop run by the scheduler alone.

The site has ten linked pages on three topics (installing, jobs and schedules, workers) and two pages only its
sitemap lists, which the crawl leaves out (one past the page limit, one excluded by a pattern): the planted gaps,
on snapshots and on encryption at rest. Every day three users ask about forty questions: mostly well answered
ones, paraphrased questions about the two gaps, and requests to convert YAML they paste into JSON (no tool does
that: the planted missing tool). Each day the scheduler ticks and the workers run, so the daily ``proposals``
task analyses the usage by itself. Then an approver approves the proposals: each crawl runs and the gap
questions' scores rise (printed before/after, and asserted); the tool proposal queues an evolution, which is
cancelled rather than run (no language model here: answers are extractive, so everything is deterministic).

The usage log and the cost ledger follow the injected clock like the scheduler: each day's questions carry
that day's time, and the analysis's 30-day window ends on the scripted day.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

from doc_fixtures import page_html
from sitefixtures import serve
from test_request_queue import _serve_until_idle
from test_scripted_week import DAY, START, FakeClock, SignedReceiver

from evorag.principals import Principal, Role
from evorag.service import CrawlRequest, Evorag
from evorag.service._request_kinds import periodic_tasks

# path: (title, body); the first ten are linked from each other, the last two only from the sitemap.
INDEXED = {
    "index.html": ("Tidewater guide", ("<p>Tidewater is a job runner for Python: install it, define jobs, run "
                   "workers.</p>")),
    "install.html": ("Installing Tidewater", ("<p>Install Tidewater with pip install tidewater. It needs Python "
                     "3.11 or newer and runs on Linux and macOS.</p>")),
    "upgrade.html": ("Upgrading", ("<p>To upgrade Tidewater, run pip install --upgrade tidewater and then "
                     "tidewater migrate to update the job tables.</p>")),
    "configuration.html": ("Configuration", ("<p>Tidewater reads its settings from tidewater.toml in the working "
                           "directory; TIDEWATER_CONFIG names another file.</p>")),
    "jobs.html": ("Defining jobs", ("<p>Define a job by decorating a function with @tidewater.job; call "
                  "job.delay(args) to enqueue it.</p>")),
    "cron.html": ("Cron schedules", ("<p>Run a job periodically with @tidewater.job(cron='0 3 * * *'); cron "
                  "expressions are evaluated in UTC.</p>")),
    "priorities.html": ("Job priorities", ("<p>Every job has a priority from 0 to 9; workers take priority 9 jobs "
                        "first and the default priority is 5.</p>")),
    "workers.html": ("Running workers", ("<p>Start a worker with tidewater worker --concurrency 8; each worker "
                     "process runs that many jobs at once.</p>")),
    "timeouts.html": ("Job timeouts", ("<p>A job that runs longer than its timeout of 300 seconds is killed and "
                      "retried; set timeout= on the decorator to change it.</p>")),
    "logging.html": ("Worker logging", ("<p>Workers log to standard error in JSON lines; set TIDEWATER_LOG_LEVEL "
                     "to debug for more detail.</p>")),
}
GAPS = {
    "snapshots.html": ("Snapshots", ("<p>Take a snapshot of the job store with tidewater snapshot create; restore "
                       "a snapshot with tidewater snapshot restore FILE. Snapshots are consistent while workers "
                       "run.</p>")),
    "encryption.html": ("Encryption at rest", ("<p>Tidewater encrypts stored job payloads at rest with AES-GCM when "
                        "TIDEWATER_ENCRYPTION_KEY is set; rotate the encryption key with tidewater rotate-key.</p>")),
}
ANSWERED = {
    "install": ["How do I install Tidewater?", "Which Python version does Tidewater need?",
                "install command for tidewater"],
    "upgrade": ["How do I upgrade Tidewater to a new release?", ("What command updates the job tables after an "
                "upgrade?")],
    "configuration": ["Where does Tidewater read its settings from?", ("Which environment variable names the "
                      "config file?")],
    "cron": ["How do I run a job periodically with cron?", "In which time zone are cron expressions evaluated?"],
    "priorities": ["What is the default job priority?", "Which jobs do workers take first?"],
    "workers": ["How do I start a worker with more concurrency?", "How many jobs does a worker run at once?"],
    "timeouts": ["What is the default job timeout?", "What happens to a job that runs longer than its timeout?"],
}
GAP_QUESTIONS = {
    "snapshots.html": ["How do I take a snapshot of the job store?", "How can I restore jobs from a snapshot?",
                       "Is a snapshot consistent while workers run?", "snapshot restore command",
                       "Can I back up the job store with a snapshot?"],
    "encryption.html": ["How do I turn on encryption of job payloads at rest?",
                        "Which key is used for encryption at rest?",
                        "How do I rotate the encryption key?", "encryption at rest for stored jobs",
                        "Are stored job payloads protected by encryption?"],
}
# The planted missing tool: the same instruction, a different document pasted each time (the user's data).
YAML_KEYS = ("retries", "queue", "owner", "region", "max_jobs", "color", "level", "port")
USERS = [Principal("alice", Role.READER, via="python"), Principal("bob", Role.READER, via="python"),
         Principal("carol", Role.OPERATOR, via="python")]
APPROVER = Principal("dana", Role.APPROVER, via="python")
DAYS = 7


def _write_site(root: Path, base: str) -> None:
    linked = tuple(INDEXED)
    for path, (title, body) in {**INDEXED, **GAPS}.items():
        links = tuple(p for p in linked if p != path) if path in INDEXED else ()
        (root / path).write_text(page_html(title, body, links))
    (root / "sitemap.xml").write_text(
        '<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        + "".join(f"<url><loc>{base}{path}</loc></url>" for path in (*INDEXED, *GAPS)) + "</urlset>")


def _yaml_request(rng: random.Random, n: int) -> tuple[str, str]:
    """A conversion request with its pasted document; the document's marker (user data, never to reach the
    evolution request)."""
    marker = f"v{rng.randrange(10**6):06d}x{n}"
    document = f"{rng.choice(YAML_KEYS)}: {marker}\nname: svc{n}"
    return f"Convert this YAML to JSON:\n{document}", marker


def questions_of(day: int, rng: random.Random) -> list[tuple[Principal, str, str | None]]:
    """The day's 40 questions: (who, question, pasted data or None), in a shuffled order."""
    asked: list[tuple[str, str | None]] = []
    answered = [q for qs in ANSWERED.values() for q in qs]
    asked += [(rng.choice(answered), None) for _ in range(24)]
    for questions in GAP_QUESTIONS.values():
        asked += [(q, None) for q in rng.sample(questions, 5)]
    asked += [_yaml_request(rng, day * 100 + n) for n in range(6)]
    rng.shuffle(asked)
    return [(USERS[n % len(USERS)], question, data) for n, (question, data) in enumerate(asked)]


def _rag(home: Path, clock: FakeClock) -> Evorag:
    return Evorag(home=home, llm_provider="none", clock=clock, queue_poll_seconds=0.05, allow_private=True,
                  scheduler_tick_seconds=0.2, schedules=dict.fromkeys(periodic_tasks(), "daily"))


def test_a_week_of_usage_proposes_the_planted_gaps_and_tool_and_approval_closes_the_gaps(tmp_path) -> None:
    started = time.monotonic()
    root, home = tmp_path / "site", tmp_path / "home"
    root.mkdir()
    clock = FakeClock(START)
    rng = random.Random(1313)
    pasted: list[str] = []
    asked = 0
    with serve(root) as site, SignedReceiver() as receiver:
        _write_site(root, site.url("/"))
        rag = _rag(home, clock)
        try:
            _, receiver.secret = rag.add_webhook(receiver.url, ["proposal"], allow_private=True)
            # Partly indexed: ten pages fit the page limit, the snapshots page is left past it, the encryption
            # page is excluded by a pattern; both are in the sitemap, so the catalog knows them.
            first = rag.crawl(CrawlRequest(site.url("/index.html"), source="tidewater", max_pages=len(INDEXED),
                                           exclude=("*encryption*",), allow_private=True))
            assert first.pages_indexed == len(INDEXED)
            _serve_until_idle(rag, timeout=180.0)  # the scheduler starts: the periodic tasks get their schedules

            runs = []
            for day in range(1, DAYS + 1):
                clock.now = START + day * DAY + 60
                for who, question, data in questions_of(day, rng):
                    rag.ask(question, principal=who)
                    asked += 1
                    if data is not None:
                        pasted.append(data)
                submitted = rag.requests.scheduler.tick()
                assert "proposals" in [r.kind for r in submitted], (day, submitted)
                _serve_until_idle(rag, timeout=180.0)
                [run] = [rag.queue_request(r.id) for r in submitted if r.kind == "proposals"]
                assert (run.status, run.origin) == ("done", "schedule"), (day, run.error)
                runs.append(run)
            assert asked == DAYS * 40

            # What the loop proposed, by itself: each gap once, naming exactly its page, the gap's questions
            # as evidence; one tool proposal for the conversion; nothing for the topics the docs answer.
            proposed = rag.list_proposals(limit=100)
            made_by_runs = {p["id"] for run in runs for p in run.result["proposals"]}
            assert {p.id for p in proposed if p.kind != "heal"} <= made_by_runs
            crawls = {tuple(p.urls): p for p in proposed if p.kind == "crawl"}
            assert set(crawls) == {(site.url(f"/{path}"),) for path in GAPS}, [(p.urls, p.evidence) for p in
                                                                               crawls.values()]
            for path, questions in GAP_QUESTIONS.items():
                proposal = crawls[(site.url(f"/{path}"),)]
                # Topics are clusters by meaning: a neighbouring gap's question may join one (the two gaps share
                # "stored jobs"), but most of the evidence is the gap's own questions, and the page is its page.
                own = [q for q in proposal.evidence if q in questions]
                assert len(own) >= 2 and len(own) > len(proposal.evidence) / 2, proposal.evidence
                assert set(proposal.evidence) <= set(questions) | {q for qs in GAP_QUESTIONS.values() for q in qs}
                assert proposal.reasons[0]["origin"] == "sitemap"
                assert proposal.reasons[0]["reason"] == ("excluded" if path == "encryption.html" else "page limit")
                assert proposal.status == "proposed" and proposal.approval_id
            # Nothing for the topics the docs answer, and no pasted document in any crawl proposal's evidence.
            answered = {q for qs in ANSWERED.values() for q in qs}
            assert not [p.evidence for p in proposed if set(p.evidence) & answered]
            assert all("YAML" not in e for p in crawls.values() for e in p.evidence)
            [tool] = [p for p in proposed if p.kind == "tool"]
            assert tool.evidence == ["convert this yaml to json"] and tool.status == "proposed"
            assert "yaml" in tool.topic and "json" in tool.topic
            assert "convert this yaml to json" in tool.request
            assert not [data for data in pasted if data in tool.request or any(data in e for e in tool.evidence)]
            assert "name: svc" not in tool.request

            # The receiver got a signed ``proposal`` event for each.
            assert rag.parts.webhooks.flush(30)
            events = receiver.take()
            assert receiver.bad == [] and {e["event"] for e in events} == {"proposal"}
            told = {e["data"]["proposal_id"]: e["data"] for e in events}
            assert {p.id for p in (*crawls.values(), tool)} <= set(told)
            assert not [data for data in pasted for event in told.values() if data in str(event)]
            assert {told[p.id]["target"] for p in crawls.values()} == {site.url(f"/{path}") for path in GAPS}
            assert told[tool.id]["kind"] == "tool" and told[tool.id]["target"] == tool.request
            proposed_on = {p["id"]: day for day, run in enumerate(runs, 1) for p in run.result["proposals"]}
            # Made early in the week by the daily runs, each once: later runs find the same gaps and make nothing new.
            assert max(proposed_on[p.id] for p in (*crawls.values(), tool)) <= 2, proposed_on
            assert len([p for p in proposed if p.kind == "crawl"]) == len(GAPS)
            assert [run.result["proposals"] for run in runs[2:]] == [[]] * (DAYS - 2)

            # Approved: the tool proposal queues an evolution (cancelled here: no real evolution runs) ...
            rag.decide_approval(tool.approval_id, approve=True, principal=APPROVER)
            evolve = rag.queue_request(rag.get_proposal(tool.id).request_id)
            assert (evolve.kind, evolve.origin, evolve.status) == ("evolve", "proposal", "queued")
            assert evolve.payload["request"] == tool.request
            rag.cancel_request(evolve.id)
            assert rag.queue_request(evolve.id).status == "cancelled"
            # ... and each crawl proposal queues a crawl of its page, which the workers run.
            for proposal in crawls.values():
                rag.decide_approval(proposal.approval_id, approve=True, principal=APPROVER)
                request = rag.queue_request(rag.get_proposal(proposal.id).request_id)
                assert (request.kind, request.origin, request.status) == ("proposal-crawl", "proposal", "queued")
            _serve_until_idle(rag, timeout=180.0)

            print(f"\n{asked} questions over {DAYS} days; proposals (day made, kind, topic):")
            for p in reversed(proposed):
                print(f"  day {proposed_on.get(p.id)}: {p.kind} {p.topic!r} {p.urls or ''}")
            print(f"{'gap page':<18}{'score':<10}{'before':>8}{'after':>8}")
            for path in GAPS:
                done = rag.get_proposal(crawls[(site.url(f"/{path}"),)].id)
                assert done.status == "done", done.error
                assert [(c["url"], c["status"], c["pages"]) for c in done.effect["crawled"]] == [
                    (site.url(f"/{path}"), "crawled", 1)]
                before, after = done.effect["mean_before"], done.effect["mean_after"]
                for name in ("ndcg", "overall"):
                    print(f"{path:<18}{name:<10}{before[name]:>8.3f}{after[name]:>8.3f}")
                    assert after[name] > before[name], (path, name, before, after)
                hits = rag.search(done.evidence[0], limit=1)
                assert hits[0].chunk.url == site.url(f"/{path}")
            print(f"run time {time.monotonic() - started:.1f}s")
        finally:
            rag.close()
