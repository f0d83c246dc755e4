"""The UI's password login and the secret that signs its session tokens."""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

from evorag.errors import ConfigError

AUTH_SECRET_ENV = "CHAINLIT_AUTH_SECRET"


def credentials_configured(settings) -> bool:
    return bool(settings.ui_user and settings.ui_password and settings.ui_password.get_secret_value())


def require_credentials(settings) -> None:
    """Raise ConfigError unless a UI user and password are set (the UI never runs without a login)."""
    if not credentials_configured(settings):
        raise ConfigError("the UI needs a login: EVORAG_UI_USER and EVORAG_UI_PASSWORD are not both set",
                          hint="export EVORAG_UI_USER=me EVORAG_UI_PASSWORD='a long passphrase'")


def check_credentials(settings, username: str, password: str) -> bool:
    """True when both match the configured ones. Constant-time: both are always compared."""
    if not credentials_configured(settings):
        return False
    user_ok = hmac.compare_digest((username or "").encode(), settings.ui_user.encode())
    password_ok = hmac.compare_digest((password or "").encode(), settings.ui_password.get_secret_value().encode())
    return user_ok and password_ok


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
