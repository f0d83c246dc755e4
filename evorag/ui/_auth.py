"""The secret that signs the UI's session tokens. Who may log in is the service's to decide
(``Evorag.authenticate``, ``Evorag.session_principal``, ``Evorag.require_ui_login``)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

AUTH_SECRET_ENV = "CHAINLIT_AUTH_SECRET"


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
