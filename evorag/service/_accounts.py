"""Logging in to the chat UI: password accounts of the principal store, and the one admin of the settings.

Accounts: every user of the store with a password (`evorag users add NAME --role ROLE --password`), plus, when
both are set, EVORAG_UI_USER / EVORAG_UI_PASSWORD as one admin account (the setup before the store). A name in
the store is checked against the store only. A logged-in session is proof that a person is present
(``Principal.human``): an approver there may approve HIGH-risk changes.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from evorag.errors import ConfigError
from evorag.principals import Principal, Role
from evorag.service._context import ServiceContext
from evorag.settings import Settings
from evorag.tools.rate_limit import FailureThrottle

FROM_STORE, FROM_SETTINGS = "store", "settings"  # where a session's account comes from


@dataclass(frozen=True, slots=True)
class Login:
    """Who logged in, and where their account lives (a session keeps ``source`` to look the account up again)."""

    principal: Principal
    source: str


def credentials_configured(settings: Settings) -> bool:
    return bool(settings.ui_user and settings.ui_password and settings.ui_password.get_secret_value())


def check_credentials(settings: Settings, username: str, password: str) -> bool:
    """True when both match EVORAG_UI_USER / EVORAG_UI_PASSWORD. Constant-time: both are always compared."""
    if not credentials_configured(settings):
        return False
    user_ok = hmac.compare_digest((username or "").encode(), settings.ui_user.encode())
    password_ok = hmac.compare_digest((password or "").encode(), settings.ui_password.get_secret_value().encode())
    return user_ok and password_ok


class AccountsService:
    def __init__(self, ctx: ServiceContext) -> None:
        self._ctx = ctx
        self._throttle = FailureThrottle(limit=ctx.settings.ui_login_attempts,
                                         window_seconds=ctx.settings.ui_login_window_seconds)

    def require_login(self) -> None:
        """Raise ConfigError unless someone can log in: EVORAG_UI_USER and EVORAG_UI_PASSWORD are both set, or a
        user of the store has a password (the UI never runs without a login)."""
        settings = self._ctx.settings
        if credentials_configured(settings) or any(u.has_password for u in self._ctx.parts.principals.users()):
            return
        raise ConfigError("the UI needs a login: no user has a UI password and EVORAG_UI_USER and "
                          "EVORAG_UI_PASSWORD are not both set",
                          hint="`evorag users add NAME --role approver --password`, or export EVORAG_UI_USER=me "
                          "EVORAG_UI_PASSWORD='a long passphrase'")

    def authenticate(self, username: str, password: str, *, via: str = "ui") -> Login | None:
        """The login for a user name and password, or None. The store's scrypt check always runs (~50 ms: call
        it off the event loop), so the time taken does not tell which accounts exist.

        Password guessing: after EVORAG_UI_LOGIN_ATTEMPTS failures for one user name within the window, that name
        is refused without a check until the oldest failure leaves the window, whether it exists or not (so the
        lockout tells nothing about accounts either). Failures and refusals go to the audit log."""
        name = (username or "")[:200]
        if self._throttle.locked_for(name) > 0:
            self._audit("login_refused", user=name, via=via, reason="too many failed logins")
            return None
        store = self._ctx.parts.principals
        principal = store.authenticate_password(username, password, via=via)
        if principal is not None:
            self._throttle.succeeded(name)
            return Login(principal, FROM_STORE)
        if store.get(username or "") is None and check_credentials(self._ctx.settings, username, password):
            self._throttle.succeeded(name)
            return Login(Principal(username, Role.ADMIN, via=via, human=True), FROM_SETTINGS)
        self._throttle.failed(name)
        self._audit("login_failed", user=name, via=via)
        return None

    def _audit(self, event: str, *, user: str, **fields: str) -> None:
        # A name that is no account is not written down: people type their password into the name field.
        known = self._ctx.parts.principals.get(user) is not None or user == self._ctx.settings.ui_user
        self._ctx.parts.pipeline.audit.write(event, user=user if known else "(not an account)", **fields)

    def session_principal(self, name: str, source: str | None, *, via: str = "ui") -> Principal | None:
        """The principal of a logged-in session now: the role is read again at every use, so removing a user or
        changing their role takes effect in open sessions. None when the account no longer exists."""
        settings = self._ctx.settings
        if source == FROM_STORE:
            record = self._ctx.parts.principals.get(name)
            return Principal(name, record.role, via=via, human=True) if record and record.has_password else None
        if source == FROM_SETTINGS and credentials_configured(settings) and settings.ui_user == name:
            return Principal(name, Role.ADMIN, via=via, human=True)
        return None
