"""The human approval token (``EVORAG_APPROVAL_TOKEN``): the proof that a person approves a HIGH-risk change.

A model must never be able to read it, so processes that run agents, generated tools or the MCP server do
not keep it in their environment (where a child process, pip building a package, or a tool escaping the
sandbox could read it). They keep only its SHA-256, which is all a verifier needs:

* ``withhold(environ)`` replaces the token by ``EVORAG_APPROVAL_TOKEN_SHA256`` in a mapping; used on
  ``os.environ`` by the MCP server, the UI, and the service before it builds the pipeline (agents, sandbox,
  pip), so children never inherit the token.
* ``reexec_without_token(args)`` restarts the ``evorag`` command itself with that environment: removing a
  variable from ``os.environ`` does not remove it from ``/proc/<pid>/environ``, which shows the environment
  the process was started with. Only ``evorag approvals ...`` keeps the token: it runs no agents or tools,
  and it presents the token as the person's proof.

The digest can also be configured directly (``approval_token_sha256`` in evorag.toml): then no process holds
the token at all, and the person types it at the approval prompt. A digest of a random token reveals nothing
usable; pick the token at random (``python -c 'import secrets; print(secrets.token_urlsafe(32))'``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping, Sequence

from evorag.principals import sha256_hex

TOKEN_ENV = "EVORAG_APPROVAL_TOKEN"
DIGEST_ENV = "EVORAG_APPROVAL_TOKEN_SHA256"
# Commands that keep the token: they decide approvals and run nothing a model wrote or drives.
KEEPS_TOKEN = frozenset({"approvals"})


def token_digests(settings) -> list[str]:
    """SHA-256 digests of the tokens this process accepts (from the token setting, or its digest)."""
    digests = []
    if settings.approval_token is not None and settings.approval_token.get_secret_value():
        digests.append(sha256_hex(settings.approval_token.get_secret_value()))
    if settings.approval_token_sha256:
        digests.append(settings.approval_token_sha256.lower())
    return digests


def withhold(environ: MutableMapping[str, str]) -> MutableMapping[str, str]:
    """Replace the token in ``environ`` by its digest (in place); returns ``environ``."""
    token = environ.pop(TOKEN_ENV, None)
    if token:
        environ[DIGEST_ENV] = sha256_hex(token)
    return environ


def withhold_from_process() -> None:
    """This process and its future children: the token leaves ``os.environ``, its digest stays."""
    withhold(os.environ)


def reexec_without_token(args: Sequence[str]) -> None:
    """Restart this ``evorag`` command without the token in its environment; returns when nothing to do."""
    if TOKEN_ENV not in os.environ or (args and args[0] in KEEPS_TOKEN):
        return
    environment = withhold(dict(os.environ))
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, list(sys.orig_argv), environment)
