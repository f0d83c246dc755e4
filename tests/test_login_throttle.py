"""Password guessing on the UI login: a user name is locked after too many failures, whether it exists or not,
and every failure and refusal is in the audit log without the password or a mistyped secret."""

from __future__ import annotations

import json

from evorag.service import Evorag

PASSWORD = "correct horse battery staple"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _audit_entries(rag: Evorag) -> list[dict]:
    path = rag.settings.audit_path
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_a_name_is_locked_after_repeated_failures_and_unlocked_when_the_window_passes(tmp_path):
    with Evorag(home=tmp_path / "home", llm_provider="none", ui_login_attempts=3,
                ui_login_window_seconds=600) as rag:
        rag.add_user("alice", "approver", password=lambda: PASSWORD)
        rag.add_user("bob", "reader", password=lambda: PASSWORD)
        clock = Clock()
        rag.accounts._throttle.clock = clock
        assert rag.authenticate("alice", PASSWORD).principal.name == "alice"
        for attempt in range(3):
            clock.now += 10
            assert rag.authenticate("alice", f"guess {attempt}") is None
        # Locked: even the right password is refused, without being checked.
        assert rag.authenticate("alice", PASSWORD) is None
        # Another name is not affected.
        assert rag.authenticate("bob", PASSWORD).principal.name == "bob"
        # The oldest failure leaves the window: one more try is allowed, and it succeeds and clears the count.
        clock.now += 600 - 20
        assert rag.authenticate("alice", PASSWORD).principal.name == "alice"
        assert rag.authenticate("alice", "one wrong") is None
        assert rag.authenticate("alice", PASSWORD) is not None
        entries = _audit_entries(rag)
    events = [(e["event"], e.get("user")) for e in entries if e["event"].startswith("login_")]
    assert events == [("login_failed", "alice")] * 3 + [("login_refused", "alice"), ("login_failed", "alice")]
    assert PASSWORD not in json.dumps(entries) and "guess" not in json.dumps(entries)


def test_unknown_names_are_locked_too_and_are_not_written_down(tmp_path):
    with Evorag(home=tmp_path / "home", llm_provider="none", ui_login_attempts=2) as rag:
        rag.add_user("alice", "approver", password=lambda: PASSWORD)
        typed_secret = "my-password-typed-as-name"
        for _ in range(3):
            assert rag.authenticate(typed_secret, "x") is None
        assert rag.accounts._throttle.locked_for(typed_secret) > 0
        entries = _audit_entries(rag)
    logins = [e for e in entries if e["event"].startswith("login_")]
    assert [e["event"] for e in logins] == ["login_failed", "login_failed", "login_refused"]
    assert all(e["user"] == "(not an account)" for e in logins)
    assert typed_secret not in json.dumps(entries)
