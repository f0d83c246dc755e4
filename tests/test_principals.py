"""Principals with roles: the store, `evorag users`, the service's role checks, and human approval through the
real CLI (a pseudo-terminal is no proof of a person; the approval token is, and it never sits in the
environment of a process that runs agents or tools)."""

from __future__ import annotations

import asyncio
import json
import os
import select
import shutil
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from evorag.cli import main
from evorag.errors import NotFoundError, PermissionDeniedError, UserError
from evorag.principals import (
    OPERATIONS,
    Principal,
    PrincipalStore,
    Role,
    local_principal,
    require,
    sha256_hex,
)
from evorag.service import CrawlRequest, Evorag

REPO = Path(__file__).resolve().parents[1]
CANDIDATES = REPO / "tests" / "candidates"
HUMAN_TOKEN = "a-random-human-approval-token-0123456789"


# Roles


def test_roles_are_ordered_and_every_operation_has_one():
    assert Role.READER < Role.OPERATOR < Role.APPROVER < Role.ADMIN
    assert {OPERATIONS[op] for op in ("search", "ask", "list_sources", "list_versions", "list_approvals")} == {
        Role.READER}
    assert {OPERATIONS[op] for op in ("crawl", "evolve", "heal", "gaps", "call_tool", "cancel_job")} == {
        Role.OPERATOR}
    assert {OPERATIONS[op] for op in ("approve", "reject", "rollback")} == {Role.APPROVER}
    assert {OPERATIONS[op] for op in ("users", "settings", "backup", "restore")} == {Role.ADMIN}
    operator = Principal("otto", Role.OPERATOR)
    assert require(operator, "crawl") is operator
    with pytest.raises(PermissionDeniedError, match="^rollback needs the approver role; otto has the operator role \\("):
        require(operator, "rollback")
    with pytest.raises(UserError, match="unknown role 'root'"):
        Role.parse("root")


def test_the_python_api_acts_as_the_local_admin():
    principal = local_principal()
    assert principal.role == Role.ADMIN and principal.name and not principal.human


# The store


def test_tokens_are_random_shown_once_and_stored_only_as_hashes(tmp_path):
    path = tmp_path / "principals.sqlite3"
    store = PrincipalStore(path)
    token = store.add("alice", "approver")
    other = store.add("bob", Role.READER)
    assert token.startswith("evr_") and len(token) > 40 and token != other
    assert store.authenticate_token(token, via="mcp-http") == Principal("alice", Role.APPROVER, via="mcp-http")
    assert store.authenticate_token(other, via="x").role == Role.READER
    for wrong in ("", "evr_nope", token[:-1], token + "x", "tökén"):
        assert store.authenticate_token(wrong, via="x") is None
    store.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert token.encode() not in raw and sha256_hex(token).encode() in raw
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_rotating_or_removing_revokes_at_once_also_for_another_process(tmp_path):
    path = tmp_path / "principals.sqlite3"
    server, admin = PrincipalStore(path), PrincipalStore(path)  # a running server and the CLI
    old = admin.add("alice", "operator")
    assert server.authenticate_token(old, via="x") is not None
    new = admin.rotate_token("alice")
    assert server.authenticate_token(old, via="x") is None and server.authenticate_token(new, via="x").name == "alice"
    admin.remove("alice")
    assert server.authenticate_token(new, via="x") is None
    with pytest.raises(NotFoundError, match="no user named 'alice'"):
        admin.remove("alice")
    with pytest.raises(NotFoundError):
        admin.rotate_token("alice")


def test_ui_passwords_use_scrypt_and_a_login_proves_a_person(tmp_path):
    store = PrincipalStore(tmp_path / "p.sqlite3")
    store.add("alice", "approver", password="correct horse battery")
    store.add("tok", "admin")  # a token-only user cannot log in to the UI
    stored = sqlite3.connect(tmp_path / "p.sqlite3").execute(
        "SELECT password FROM principals WHERE name='alice'").fetchone()[0]
    assert stored.startswith("scrypt$16384$8$1$") and "correct horse" not in stored
    person = store.authenticate_password("alice", "correct horse battery")
    assert person == Principal("alice", Role.APPROVER, via="ui", human=True)
    for name, password in (("alice", "correct horse battery "), ("Alice", "correct horse battery"),
                           ("tok", ""), ("nobody", "correct horse battery")):
        assert store.authenticate_password(name, password) is None
    with pytest.raises(UserError, match="shorter than 8"):
        store.set_password("alice", "short")


@pytest.mark.parametrize("name, message", [("", "invalid user name"), ("../x", "invalid user name"),
                                           ("a" * 65, "invalid user name"), ("policy", "reserved"),
                                           ("System", "reserved")])
def test_bad_user_names_are_refused(tmp_path, name, message):
    with pytest.raises(UserError, match=message):
        PrincipalStore(tmp_path / "p.sqlite3").add(name, "reader")


# `evorag users`


def test_users_commands(capsys, monkeypatch, evorag_home):
    assert main(["users", "add", "alice", "--role", "approver", "--json"]) == 0
    added = json.loads(capsys.readouterr().out)
    assert added["role"] == "approver" and added["token"].startswith("evr_") and not added["ui_login"]
    typed = iter(["a long passphrase", "a long passphrase"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(typed))
    assert main(["users", "add", "rita", "--role", "reader", "--password"]) == 0
    printed = capsys.readouterr()
    assert "added rita (reader)" in printed.out and "token: evr_" in printed.out and "shown only now" in printed.err
    assert main(["users", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(u["name"], u["role"], u["ui_login"]) for u in listed] == [("alice", "approver", False),
                                                                       ("rita", "reader", True)]
    assert "token" not in json.dumps(listed).replace("token_rotated_at", "")
    assert main(["users", "token", "alice", "--json"]) == 0
    rotated = json.loads(capsys.readouterr().out)["token"]
    store = PrincipalStore(evorag_home / "principals.sqlite3")
    assert store.authenticate_token(added["token"], via="x") is None
    assert store.authenticate_token(rotated, via="x").name == "alice"
    assert main(["users", "remove", "alice"]) == 0
    assert [u.name for u in store.users()] == ["rita"]


@pytest.mark.parametrize("args, message", [
    (["users", "add", "x", "--role", "root"], "unknown role 'root'"),
    (["users", "add", "../x", "--role", "reader"], "invalid user name"),
    (["users", "remove", "ghost"], "no user named 'ghost'"),
    (["users", "token", "ghost"], "no user named 'ghost'"),
    (["users", "password", "ghost"], "no user named 'ghost'"),
])
def test_users_errors_are_one_line_with_exit_2(capsys, args, message):
    assert main(args) == 2
    error = capsys.readouterr().err
    assert message in error and "Traceback" not in error and error.startswith("error:")


def test_duplicate_user_and_mismatched_passwords(capsys, monkeypatch):
    assert main(["users", "add", "alice", "--role", "reader"]) == 0
    assert main(["users", "add", "alice", "--role", "admin"]) == 2
    assert "already exists" in capsys.readouterr().err
    typed = iter(["a long passphrase", "another passphrase"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(typed))
    assert main(["users", "password", "alice"]) == 2
    assert "the two passwords differ" in capsys.readouterr().err


# The service checks the role of whoever it acts for


def test_the_service_refuses_what_the_role_does_not_allow(tmp_path):
    reader = Principal("rita", Role.READER, via="mcp-http")
    operator = Principal("otto", Role.OPERATOR, via="mcp-http")
    with Evorag(home=tmp_path / "home") as rag:
        assert rag.sources(principal=reader) == []
        assert rag.pending_approvals(principal=reader) == []
        with pytest.raises(PermissionDeniedError, match="crawl needs the operator role; rita has the reader role"):
            rag.crawl(CrawlRequest(url="https://example.com/"), principal=reader)
        for call, operation in ((lambda p: rag.rollback("abcd", principal=p), "rollback"),
                                (lambda p: rag.decide_approval("x", approve=False, principal=p), "reject"),
                                (lambda p: rag.remove_source("x", principal=p), "remove_source"),
                                (lambda p: rag.call_tool("word_count", {}, principal=p), "call_tool")):
            with pytest.raises(PermissionDeniedError, match=f"^{operation} needs the"):
                call(reader)
        with pytest.raises(PermissionDeniedError, match="approve needs the approver role; otto has the operator"):
            rag.decide_approval("x", approve=True, principal=operator)
        # A service built for a reader acts as that reader by default.
        limited = Evorag(rag.settings, principal=reader)
        with pytest.raises(PermissionDeniedError):
            asyncio.run(limited.aadd_tool(CANDIDATES / "good_word_count"))
        limited.close()


# The approval token leaves the environment of whatever runs agents, tools or pip


def test_the_service_drops_the_token_from_its_environment_before_building_the_pipeline(tmp_path, monkeypatch):
    from evorag.approval_token import DIGEST_ENV, TOKEN_ENV

    monkeypatch.setenv(TOKEN_ENV, HUMAN_TOKEN)
    with Evorag(home=tmp_path / "home") as rag:
        assert os.environ[TOKEN_ENV] == HUMAN_TOKEN  # nothing that runs code has started yet
        store = rag.evolution.approvals  # the pipeline: the sandbox, pip and the agents start from here
        assert TOKEN_ENV not in os.environ and os.environ[DIGEST_ENV] == sha256_hex(HUMAN_TOKEN)
        child = subprocess.run([sys.executable, "-c", "import json, os; print(json.dumps(dict(os.environ)))"],
                               capture_output=True, text=True, check=True)
        assert TOKEN_ENV not in json.loads(child.stdout) and HUMAN_TOKEN not in child.stdout
        high = store.create(tool="t", risk="HIGH", summary="s")  # the settings still verify the token
        assert store.decide(high.id, approve=True, principal=rag.principal, token=HUMAN_TOKEN).proof == "approval token"
    # A service made later in the same process verifies it from the digest.
    with Evorag(home=tmp_path / "home") as again:
        assert again.evolution.approvals.token_ok(HUMAN_TOKEN) and not again.evolution.approvals.token_ok("guess")


def test_the_ui_process_gets_the_digest_only(tmp_path, monkeypatch):
    from evorag.approval_token import DIGEST_ENV, TOKEN_ENV
    from evorag.settings import Settings
    from evorag.ui._launch import ui_environment

    monkeypatch.setenv(TOKEN_ENV, HUMAN_TOKEN)
    env = ui_environment(Settings(home=tmp_path / "home"), "127.0.0.1", 8123)
    assert TOKEN_ENV not in env and env[DIGEST_ENV] == sha256_hex(HUMAN_TOKEN)
    assert HUMAN_TOKEN not in "".join(env.values())


# Real processes: the approval token and pseudo-terminals


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVORAG_") or k == "EVORAG_LLM_PROVIDER"}
    env.update(EVORAG_HOME=str(home), EVORAG_CONFIG=str(home / "no-config.toml"), HF_HUB_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false", **extra)
    return env


def test_evorag_restarts_itself_without_the_token_in_its_environment(tmp_path):
    """`/proc/PID/environ` keeps what a process started with: only a restart drops the token from it."""
    home = tmp_path / "home"
    probe = ("import os, sys; from evorag.cli import main; "
             "sys.argv = ['evorag', 'config', '--json']; "
             "environ = open(f'/proc/{os.getpid()}/environ', 'rb').read(); "
             "sys.stderr.write('TOKEN-IN-PROC' if b'" + HUMAN_TOKEN + "' in environ else 'clean'); "
             "raise SystemExit(main())")
    done = subprocess.run([sys.executable, "-c", probe], env=_env(home, EVORAG_APPROVAL_TOKEN=HUMAN_TOKEN),
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    # The first run saw the token and restarted; the restarted process never had it.
    assert done.stderr.count("TOKEN-IN-PROC") == 1 and done.stderr.endswith("clean")
    config = json.loads(done.stdout)
    assert config["approval_token"] is None and config["approval_token_sha256"] == sha256_hex(HUMAN_TOKEN)


def _pending_high(home: Path, candidate: str, tmp_path: Path) -> str:
    from evorag.tools.approvals import PolicyApprover

    source = tmp_path / candidate
    shutil.copytree(CANDIDATES / candidate, source)
    with Evorag(home=home, resolve_dependencies=False, evolutions_per_hour=100) as rag:
        outcome = rag.add_tool(source, approver=PolicyApprover(assume_yes=True))
    assert (outcome.status, outcome.risk) == ("pending", "HIGH"), outcome.reason
    return outcome.approval_id


def _script(command: str, env: dict[str, str], *, answer: str | None, timeout: float = 240) -> tuple[int, str]:
    """Run ``command`` under util-linux ``script``: it gets a pseudo-terminal, as an assistant can give it.
    ``answer`` is typed (with Enter) once the command asks for the token, never before (typed earlier, the
    terminal would echo it before the prompt turns echo off)."""
    process = subprocess.Popen(["script", "-qec", command, "/dev/null"], env=env, cwd=REPO,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output, deadline, answered = b"", time.monotonic() + timeout, False
    try:
        while process.poll() is None and time.monotonic() < deadline:
            ready, _, _ = select.select([process.stdout], [], [], 0.2)
            if ready:
                chunk = os.read(process.stdout.fileno(), 4096)
                output += chunk
            if not answered and b"not echoed" in output:
                process.stdin.write(((answer or "") + "\n").encode())
                process.stdin.flush()
                answered = True
        output += process.stdout.read() or b""
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
    return process.returncode, output.decode(errors="replace")


@pytest.mark.skipif(shutil.which("script") is None or shutil.which("bwrap") is None,
                    reason="needs util-linux script and bubblewrap")
def test_a_pseudo_terminal_is_no_proof_of_a_person_but_the_token_is(tmp_path):
    home = tmp_path / "home"
    first = _pending_high(home, "reads_secret_env", tmp_path)
    second = _pending_high(home, "uses_network", tmp_path)
    # The CLI process knows only the token's digest: the token itself is nowhere in its environment.
    env = _env(home, EVORAG_APPROVAL_TOKEN_SHA256=sha256_hex(HUMAN_TOKEN), EVORAG_RESOLVE_DEPENDENCIES="false")
    approve = f"{sys.executable} -m evorag.cli approvals approve"

    # What an assistant with a shell does: a TTY, and Enter (or a guess) at the prompt. Refused, still pending.
    for guess in ("", "y", "let me in"):
        code, output = _script(f"{approve} {first}", env, answer=guess)
        assert code == 2 and "only a human can approve it" in output, output
        assert "Traceback" not in output
    with Evorag(home=home) as rag:
        assert {first, second} <= {p.id for p in rag.pending_approvals()}

    # The person types the token at the prompt: accepted, deployed, and the token was never echoed.
    code, output = _script(f"{approve} {first}", env, answer=HUMAN_TOKEN)
    assert code == 0 and f"{first}: deployed" in output, output
    assert HUMAN_TOKEN not in output

    # The token in the environment of `evorag approvals` (the one command that keeps it) works too.
    code, output = _script(f"{approve} {second}", {**env, "EVORAG_APPROVAL_TOKEN": HUMAN_TOKEN}, answer=None)
    assert code == 0 and f"{second}: deployed" in output, output
    with Evorag(home=home) as rag:
        entries = [e for e in rag.evolution.audit.entries() if e["event"] == "approved" and e.get("approval_id")]
    assert {e["approval_id"] for e in entries} >= {first, second}
    assert all(e["principal"]["via"] == "cli" and e["proof"] == "approval token" for e in entries)


def test_a_refused_operation_is_audited_with_who_and_what(tmp_path):
    """Probing for what one may do leaves a trace: each refusal is an audit entry naming the principal, its
    interface and the operation; an allowed call writes none."""
    reader = Principal("rita", Role.READER, via="mcp")
    with Evorag(home=tmp_path / "home", llm_provider="none") as rag:
        with pytest.raises(PermissionDeniedError):
            rag.crawl(CrawlRequest("https://docs.example.org/", source="x"), principal=reader)
        with pytest.raises(PermissionDeniedError):
            rag.add_webhook("https://hooks.example.org/x", ["deploy"], principal=reader)
        rag.sources(principal=reader)  # allowed
        entries = [json.loads(line) for line in rag.settings.audit_path.read_text().splitlines()]
    refused = [(e["principal"]["name"], e["via"], e["operation"]) for e in entries if e["event"] == "permission_denied"]
    assert refused == [("rita", "mcp", "crawl"), ("rita", "mcp", "webhooks")], refused
