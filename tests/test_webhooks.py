"""Webhooks end to end: real HTTP receivers on 127.0.0.1, real signatures, the real URL guard, the delivery log
in SQLite under EVORAG_HOME. Events come from where evorag raises them (an approval created by the evolution
pipeline's store, a real crawl of the demo site)."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.server
import json
import logging
import threading
import time
from pathlib import Path
from typing import Self

import pytest
from evorag.tools.approvals import PolicyApprover
from evorag.tools.webhooks import (
    DeliveryPolicy,
    Webhook,
    WebhookNotifier,
    WebhookStore,
    sign,
    verify_signature,
)

from evorag.cli import main
from evorag.errors import BlockedURLError, NotFoundError, PermissionDeniedError, UserError
from evorag.principals import Principal, Role
from evorag.service import Evorag

CANDIDATES = Path(__file__).parent / "candidates"


class Receiver:
    """An HTTP server on 127.0.0.1 that records every POST and answers ``status``."""

    def __init__(self, status: int = 204) -> None:
        self.status = status
        self.requests: list[tuple[dict, bytes]] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append((dict(self.headers), body))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def fast(rag: Evorag) -> Evorag:
    rag.settings.webhook_backoff_seconds = 0.01
    rag.settings.webhook_max_attempts = 3
    rag.settings.webhook_disable_after = 2
    return rag


def test_approval_pending_deploy_and_rollback_are_delivered_signed_and_verifiable(evorag_home, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    with Receiver() as receiver, fast(Evorag(home=evorag_home, evolutions_per_hour=1000)) as rag:
        hook, secret = rag.add_webhook(receiver.url, ["approval_pending", "deploy", "rollback"], allow_private=True)
        assert secret.startswith("whsec_") and len(secret) > 40
        before = rag.tool_set_checkpoint()
        # A real candidate through the real gates; no --yes and nobody to ask: it waits for an approver.
        outcome = rag.add_tool(CANDIDATES / "good_word_count", approver=PolicyApprover(assume_yes=False))
        assert outcome.status == "pending"
        assert rag.parts.webhooks.flush(30)

        assert len(receiver.requests) == 1
        headers, body = receiver.requests[0]
        headers = {k.lower(): v for k, v in headers.items()}
        assert headers["x-evorag-webhook"] == hook.id and headers["x-evorag-event"] == "approval_pending"
        timestamp, signature = headers["x-evorag-timestamp"], headers["x-evorag-signature"]
        assert abs(int(timestamp) - time.time()) < 60
        assert verify_signature(secret, timestamp, body, signature)
        data = json.loads(body)
        assert data["event"] == "approval_pending" and data["id"] == headers["x-evorag-delivery"]
        assert data["data"]["approval_id"] == outcome.approval_id and data["data"]["risk"] == "LOW"
        # What a receiver refuses: another secret, an altered body, a replayed (old) timestamp.
        assert not verify_signature("whsec_other", timestamp, body, signature)
        assert not verify_signature(secret, timestamp, body.replace(b"LOW", b"HIGH"), signature)
        assert not verify_signature(secret, timestamp, body, signature, now=int(timestamp) + 3600)
        # The scheme, computed here independently: HMAC-SHA256 over timestamp + "." + body.
        expected = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        assert signature == "sha256=" + expected == sign(secret, timestamp, body)

        deployed = rag.decide_approval(outcome.approval_id, approve=True)
        assert deployed.status == "deployed"
        rag.rollback(before)
        assert rag.parts.webhooks.flush(30)
        events = [json.loads(b) for _, b in receiver.requests]
        assert [e["event"] for e in events] == ["approval_pending", "deploy", "rollback"]
        assert events[1]["data"]["tool"] == deployed.tool and events[2]["data"]["to_version"] == before
        for headers, body in receiver.requests:
            assert verify_signature(secret, headers["X-Evorag-Timestamp"], body, headers["X-Evorag-Signature"])

        log = rag.webhook_log()
        assert [(a.event, a.attempt, a.ok, a.status) for a in log] == [
            ("approval_pending", 1, True, 204), ("deploy", 1, True, 204), ("rollback", 1, True, 204)]
        listed = rag.list_webhooks()
        assert [h.id for h in listed] == [hook.id] and listed[0].failures == 0
        # The secret is shown once: never listed, logged, or in the delivery log or the audit log.
        dumped = json.dumps([h.to_dict() for h in listed]) + json.dumps([a.to_dict() for a in log])
        assert secret not in dumped and secret not in caplog.text
        assert secret not in rag.settings.audit_path.read_text()
        assert (evorag_home / "webhooks.sqlite3").stat().st_mode & 0o077 == 0


def test_failing_receiver_is_retried_then_disabled_until_enabled_by_hand(evorag_home) -> None:
    with Receiver(status=500) as receiver, fast(Evorag(home=evorag_home)) as rag:
        hook, _ = rag.add_webhook(receiver.url, ["anomaly"], allow_private=True)
        notifier = rag.parts.webhooks
        assert notifier.emit("anomaly", {"metric": "latency_ms"}) == 1
        assert notifier.flush(30)
        attempts = rag.webhook_log(hook_id=hook.id)
        assert [(a.attempt, a.ok, a.status) for a in attempts] == [(1, False, 500), (2, False, 500), (3, False, 500)]
        assert len({a.delivery_id for a in attempts}) == 1  # retries of one delivery keep its id
        assert len({r[0]["X-Evorag-Delivery"] for r in receiver.requests}) == 1
        assert rag.list_webhooks()[0].enabled and rag.list_webhooks()[0].failures == 1

        assert notifier.emit("anomaly", {"metric": "latency_ms"}) == 1
        assert notifier.flush(30)
        disabled = rag.list_webhooks()[0]
        assert not disabled.enabled and disabled.failures == 2 and "2 deliveries in a row" in disabled.disabled_reason
        assert notifier.emit("anomaly", {"metric": "latency_ms"}) == 0  # disabled: nothing is sent
        assert len(receiver.requests) == 6

        receiver.status = 200
        enabled = rag.enable_webhook(hook.id)
        assert enabled.enabled and enabled.failures == 0
        assert notifier.emit("anomaly", {"metric": "latency_ms"}) == 1 and notifier.flush(30)
        assert rag.webhook_log(hook_id=hook.id)[-1].ok
        # Events a hook did not subscribe to are not sent to it.
        assert notifier.emit("deploy", {}) == 0


def test_backoff_doubles_with_jitter(tmp_path) -> None:
    waits: list[float] = []
    store = WebhookStore(tmp_path / "hooks.sqlite3")
    with Receiver(status=503) as receiver:
        hook, _ = store.add(receiver.url, ["proposal"], allow_private=True)
        notifier = WebhookNotifier(store, DeliveryPolicy(max_attempts=4, backoff=1.0, disable_after=10),
                                   sleep=waits.append)
        assert notifier.deliver(hook, {"event": "proposal", "data": {}}) is False
    assert len(waits) == 3
    for wait, base in zip(waits, (1.0, 2.0, 4.0), strict=True):
        assert base <= wait <= 2 * base
    notifier.close()


def test_private_urls_are_refused_unless_allowed(evorag_home) -> None:
    with Evorag(home=evorag_home) as rag:
        for url in ("http://127.0.0.1:8080/hook", "http://10.1.2.3/hook", "http://localhost/hook",
                    "http://[::1]/hook", "http://169.254.169.254/latest"):
            with pytest.raises(BlockedURLError, match="refusing"):
                rag.add_webhook(url, ["deploy"])
        with pytest.raises(UserError, match="http"):
            rag.add_webhook("file:///etc/passwd", ["deploy"])
        with pytest.raises(UserError, match="unknown webhook event"):
            rag.add_webhook("http://127.0.0.1/x", ["deploy", "everything"], allow_private=True)
        assert rag.list_webhooks() == []
        with pytest.raises(NotFoundError):
            rag.enable_webhook("wh_missing")
        reader = Principal("viewer", Role.READER, via="python")
        with pytest.raises(PermissionDeniedError):
            rag.add_webhook("http://127.0.0.1/x", ["deploy"], allow_private=True, principal=reader)
        with pytest.raises(PermissionDeniedError):
            rag.webhook_log(principal=reader)


def test_the_guard_is_checked_again_at_connection_time(tmp_path) -> None:
    # A hook whose URL now leads to a loopback address (as DNS rebinding would) is refused when connecting,
    # logged once, and not retried.
    store = WebhookStore(tmp_path / "hooks.sqlite3")
    with Receiver() as receiver:
        hook, _ = store.add(receiver.url, ["deploy"], allow_private=True)
        rebound = Webhook(**{**hook.to_dict(), "allow_private": False})
        notifier = WebhookNotifier(store, DeliveryPolicy(backoff=0.0), sleep=lambda s: None)
        assert notifier.deliver(rebound, {"event": "deploy", "data": {}}) is False
        assert receiver.requests == []
    attempts = store.log()
    assert len(attempts) == 1 and "refusing" in attempts[0].error
    notifier.close()


def test_crawl_finished_is_sent_after_a_real_crawl(evorag_home) -> None:
    from evorag.demo import serve_demo_site
    from evorag.service import CrawlRequest

    with Receiver() as receiver, serve_demo_site(0) as base_url, Evorag(home=evorag_home) as rag:
        _, secret = rag.add_webhook(receiver.url, ["crawl_finished"], allow_private=True)
        report = rag.crawl(CrawlRequest(url=base_url + "index.html", source="demo", allow_private=True, max_pages=3))
        assert rag.parts.webhooks.flush(30)
    assert len(receiver.requests) == 1
    headers, body = receiver.requests[0]
    assert verify_signature(secret, headers["X-Evorag-Timestamp"], body, headers["X-Evorag-Signature"])
    data = json.loads(body)["data"]
    assert data["source"] == "demo" and data["pages_indexed"] == report.pages_indexed >= 1


def test_cli_add_list_enable_remove_log(capsys) -> None:
    with contextlib.ExitStack() as stack:
        receiver = stack.enter_context(Receiver())
        assert main(["webhooks", "add", receiver.url, "--events", "deploy,rollback"]) == 2
        assert "refusing" in capsys.readouterr().err
        assert main(["webhooks", "add", receiver.url, "--events", "deploy,rollback", "--allow-private",
                     "--json"]) == 0
        added = json.loads(capsys.readouterr().out)
        assert added["secret"].startswith("whsec_") and added["events"] == ["deploy", "rollback"]
        assert main(["webhooks", "list", "--json"]) == 0
        listed = json.loads(capsys.readouterr().out)
        assert [h["id"] for h in listed] == [added["id"]] and "secret" not in listed[0]
        assert main(["webhooks", "enable", added["id"]]) == 0
        assert main(["webhooks", "log", "--json"]) == 0
        assert json.loads(capsys.readouterr().out.split("\n", 1)[1]) == []
        assert main(["webhooks", "remove", added["id"]]) == 0
        assert main(["webhooks", "remove", added["id"]]) == 2
        assert "no webhook" in capsys.readouterr().err


def test_anomalies_are_sent_once(evorag_home) -> None:
    import random

    from evorag.tools.metrics_store import MetricsStore

    store = MetricsStore(evorag_home / "metrics.sqlite3")
    rng = random.Random(4)
    for i in range(150):
        store.record({"overall": 0.8 + rng.gauss(0, 0.03) - (0.25 if i >= 120 else 0.0)}, query=f"q{i}")
    with Receiver() as receiver, Evorag(home=evorag_home) as rag:
        rag.add_webhook(receiver.url, ["anomaly"], allow_private=True)
        report = rag.anomalies(notify=True)
        assert report.alerts and rag.parts.webhooks.flush(30)
        sent = [json.loads(body)["data"] for _, body in receiver.requests]
        assert [a["record_id"] for a in sent] == [a.record_id for a in report.alerts]
        assert any(a["metric"] == "answer_quality" and a["direction"] == "down" for a in sent)
        rag.anomalies(notify=True)  # nothing new since: nothing sent again
        assert rag.parts.webhooks.flush(30) and len(receiver.requests) == len(sent)
        with pytest.raises(PermissionDeniedError):
            rag.anomalies(notify=True, principal=Principal("viewer", Role.READER))
