"""The UI's password login against the principal store, and the secret that signs its session tokens.

Accounts: every user of the store with a password (`evorag users add NAME --role ROLE --password`), plus,
when both are set, EVORAG_UI_USER / EVORAG_UI_PASSWORD as one admin account (the setup before the store).
A name in the store is checked against the store only. A logged-in session is proof that a person is
present (``Principal.human``): an approver there may approve HIGH-risk changes.
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

from evorag.errors import ConfigError
from evorag.principals import Principal, PrincipalStore, Role

AUTH_SECRET_ENV = "CHAINLIT_AUTH_SECRET"
FROM_STORE, FROM_SETTINGS = "store", "settings"  # where a session's account comes from (its cl.User metadata)


def credentials_configured(settings) -> bool:
    return bool(settings.ui_user and settings.ui_password and settings.ui_password.get_secret_value())


def require_credentials(settings, store: PrincipalStore | None = None) -> None:
    """Raise ConfigError unless someone can log in: EVORAG_UI_USER and EVORAG_UI_PASSWORD are both set, or a
    user of the store has a password (the UI never runs without a login)."""
    if credentials_configured(settings) or (store is not None and any(u.has_password for u in store.users())):
        return
    raise ConfigError("the UI needs a login: no user has a UI password and EVORAG_UI_USER and EVORAG_UI_PASSWORD "
                      "are not both set",
                      hint="`evorag users add NAME --role approver --password`, or export EVORAG_UI_USER=me "
                      "EVORAG_UI_PASSWORD='a long passphrase'")


def check_credentials(settings, username: str, password: str) -> bool:
    """True when both match the configured ones. Constant-time: both are always compared."""
    if not credentials_configured(settings):
        return False
    user_ok = hmac.compare_digest((username or "").encode(), settings.ui_user.encode())
    password_ok = hmac.compare_digest((password or "").encode(), settings.ui_password.get_secret_value().encode())
    return user_ok and password_ok


def login(settings, store: PrincipalStore, username: str, password: str) -> tuple[Principal, str] | None:
    """The principal (and where its account lives) for a login, or None. The store's scrypt check always
    runs, so the time taken does not tell which accounts exist."""
    principal = store.authenticate_password(username, password, via="ui")
    if principal is not None:
        return principal, FROM_STORE
    if store.get(username or "") is None and check_credentials(settings, username, password):
        return Principal(username, Role.ADMIN, via="ui", human=True), FROM_SETTINGS
    return None


def session_principal(settings, store: PrincipalStore, name: str, source: str | None) -> Principal | None:
    """The principal of a logged-in session now: the role is read again at every use, so removing a user or
    changing their role takes effect in open sessions. None when the account no longer exists."""
    if source == FROM_STORE:
        record = store.get(name)
        return Principal(name, record.role, via="ui", human=True) if record and record.has_password else None
    if source == FROM_SETTINGS and credentials_configured(settings) and settings.ui_user == name:
        return Principal(name, Role.ADMIN, via="ui", human=True)
    return None


def auth_secret_path(home: Path) -> Path:
    return home / "ui" / "auth_secret"


def ensure_auth_secret(home: Path) -> str:
    """``CHAINLIT_AUTH_SECRET`` if set, else a random one kept (mode 0600) under the home, made once.

    Keeping it means sessions survive a restart; deleting the file logs everyone out.
    """
    explicit = os.environ.get(AUTH_SECRET_ENV)
    if explicit:
        return explicit
    path = auth_secret_path(home)
    if path.is_file():
        value = path.read_text().strip()
        if value:
            return value
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(value + "\n")
    return value
