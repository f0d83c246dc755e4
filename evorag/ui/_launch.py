"""``evorag ui``: prepare Chainlit's app folder under EVORAG_HOME and run ``chainlit run app.py``.

Chainlit writes its config, translations and uploaded files into its app root, so the root is
``<home>/ui`` (all state stays under the home) while the callbacks come from the repository's app.py.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import sys
from pathlib import Path

from evorag.approval_token import withhold
from evorag.errors import ConfigError
from evorag.service import Evorag
from evorag.ui._auth import AUTH_SECRET_ENV, ensure_auth_secret

# A checkout (or editable install) has the app at the repository root; a regular install ships a copy
# under <prefix>/share/evorag (pyproject's data-files).
_CANDIDATE_ROOTS = (Path(__file__).resolve().parents[2], Path(sys.prefix) / "share" / "evorag")
REPO_ROOT = next((root for root in _CANDIDATE_ROOTS if (root / "app.py").is_file()), _CANDIDATE_ROOTS[0])


def app_file() -> Path:
    path = REPO_ROOT / "app.py"
    if not path.is_file():
        raise ConfigError(f"the UI's app.py is not at {path}",
                          hint="reinstall evorag (pip install .) or run from a checkout (pip install -e .)")
    return path


def allowed_origins(host: str, port: int) -> list[str]:
    hosts = {host, "127.0.0.1", "localhost"} if is_loopback(host) else {host}
    return sorted(f"http://{h}:{port}" for h in hosts if h not in ("0.0.0.0", "::"))


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def prepare_app_root(home: Path, host: str, port: int) -> Path:
    """``<home>/ui`` with our config.toml (CORS limited to the UI's own origins) and welcome page."""
    root = home / "ui"
    (root / ".chainlit").mkdir(parents=True, exist_ok=True)
    template = (REPO_ROOT / ".chainlit" / "config.toml").read_text()
    origins = ", ".join(f'"{origin}"' for origin in allowed_origins(host, port))
    config, count = re.subn(r"(?m)^allow_origins\s*=.*$", f"allow_origins = [{origins}]", template)
    if count != 1:
        raise ConfigError("the UI's .chainlit/config.toml has no single allow_origins line",
                          hint="restore it from the repository")
    (root / ".chainlit" / "config.toml").write_text(config)
    shutil.copyfile(REPO_ROOT / "chainlit.md", root / "chainlit.md")
    write_public_files(root / "public")
    return root


def _wordmark(color: str) -> str:
    return ('<svg xmlns="http://www.w3.org/2000/svg" width="150" height="40" viewBox="0 0 150 40">'
            f'<text x="2" y="31" font-family="system-ui, sans-serif" font-size="32" font-weight="700" fill="{color}">'
            'evorag</text></svg>')


_MARK = ('<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64" viewBox="0 0 64 64">'
         '<circle cx="32" cy="32" r="30" fill="#2f81f7"/><text x="32" y="44" text-anchor="middle" '
         'font-family="system-ui, sans-serif" font-size="34" font-weight="700" fill="#ffffff">e</text></svg>')


def write_public_files(public: Path) -> None:
    """Our logo, favicon and avatar instead of Chainlit's, and no web fonts: the UI fetches nothing
    from outside this machine for its own look."""
    (public / "avatars").mkdir(parents=True, exist_ok=True)
    (public / "logo_dark.svg").write_text(_wordmark("#f0f6fc"))
    (public / "logo_light.svg").write_text(_wordmark("#1f2328"))
    (public / "favicon.svg").write_text(_MARK)
    (public / "avatars" / "evorag.svg").write_text(_MARK)
    (public / "theme.json").write_text(json.dumps({"custom_fonts": []}))


def ui_command(host: str, port: int) -> list[str]:
    return [sys.executable, "-m", "chainlit", "run", str(app_file()), "--headless", "--host", host,
            "--port", str(port)]


def ui_environment(settings, host: str, port: int) -> dict[str, str]:
    env = withhold(dict(os.environ))  # the UI runs agents and tools: the approval token's digest only
    env["EVORAG_HOME"] = str(settings.home)
    env["CHAINLIT_APP_ROOT"] = str(prepare_app_root(settings.home, host, port))
    env[AUTH_SECRET_ENV] = ensure_auth_secret(settings.home)
    env.pop("CI", None)  # chainlit reads CI=true as its own --ci flag (fake OpenAI key, no cache)
    return env


def run_ui(settings, host: str | None = None, port: int | None = None) -> None:
    """Replace this process with the Chainlit server. Raises ConfigError when nobody could log in."""
    with Evorag(settings) as service:
        service.require_ui_login()
    host = host or settings.ui_host
    port = port or settings.ui_port
    if not is_loopback(host):
        print(f"warning: the UI will listen on {host}, reachable from the network (login still required)",
              file=sys.stderr)
    command, env = ui_command(host, port), ui_environment(settings, host, port)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(command[0], command, env)
