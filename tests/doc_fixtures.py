"""Small documentation sites written into a directory for a test (served by sitefixtures.serve)."""

from __future__ import annotations

import os
import time
from pathlib import Path


def page_html(title: str, body: str, links: tuple[str, ...] = ()) -> str:
    # Links only in the navigation, as documentation themes do: the page's own text (what change reports
    # compare) then does not change when another page is added or removed.
    nav = "".join(f'<a href="{link}">{link}</a> ' for link in links)
    return (f"<html><head><title>{title}</title></head><body><nav>{nav}</nav><main><h1>{title}</h1>{body}"
            "</main></body></html>")


def write_site(root: Path, pages: dict[str, tuple[str, str]]) -> None:
    """Replace the site in ``root`` with ``pages`` ({path: (title, body HTML)}), each linking to all the others.

    Modification times move forward, so conditional requests see an edited page as changed."""
    root.mkdir(parents=True, exist_ok=True)
    for old in root.rglob("*.html"):
        if str(old.relative_to(root)) not in pages:
            old.unlink()
    names = tuple(sorted(pages))
    stamp = time.time() + 2
    for path, (title, body) in pages.items():
        target = root / path
        html = page_html(title, body, tuple(n for n in names if n != path))
        if target.exists() and target.read_text() == html:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(html)
        os.utime(target, (stamp, stamp))


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of an `evorag` subprocess on ``home``: no EVORAG_* of the developer, offline models,
    no language model (answers are extractive)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("EVORAG_")}
    env.update(EVORAG_HOME=str(home), EVORAG_CONFIG=str(home / "no-config.toml"), EVORAG_LLM_PROVIDER="none",
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false", **extra)
    return env


def run_cli(home: Path, *args: str, timeout: float = 300, **extra: str):
    """Run the real `evorag` command line (``python -m evorag.cli``) on ``home``."""
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "evorag.cli", *args], capture_output=True, text=True,
                          env=cli_env(home, **extra), timeout=timeout, check=False)
