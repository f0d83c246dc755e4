"""The Chainlit UI's helpers (the callbacks themselves are in the repository's app.py).

Importing Chainlit writes its config into the current directory, so the parts that need it
(``ChainlitApprover``, ``AgentSteps``, ``create_data_layer``) are imported on first use only; the
CLI can import this package without touching Chainlit.
"""

from __future__ import annotations

from importlib import import_module

from evorag.ui._auth import (
    FROM_SETTINGS,
    FROM_STORE,
    check_credentials,
    credentials_configured,
    ensure_auth_secret,
    login,
    require_credentials,
    session_principal,
)
from evorag.ui._commands import COMMANDS, Command, crawl_arguments, help_text, parse_command
from evorag.ui._render import (
    link_citations,
    quality_table,
    render_answer,
    render_crawl_progress,
    render_crawl_report,
    render_evolutions,
    render_healing,
    render_history,
    render_outcome,
    render_pending,
    render_pending_header,
    render_principal,
    render_sources,
    render_tools,
    render_trend,
    render_versions,
)

_LAZY = {
    "ChainlitApprover": "evorag.ui._approver",
    "AgentSteps": "evorag.ui._steps",
    "create_data_layer": "evorag.ui._datalayer",
    "ensure_schema": "evorag.ui._datalayer",
    "metrics_figure": "evorag.ui._plots",
    "run_ui": "evorag.ui._launch",
}

__all__ = [
    "COMMANDS",
    "FROM_SETTINGS",
    "FROM_STORE",
    "AgentSteps",
    "ChainlitApprover",
    "Command",
    "check_credentials",
    "crawl_arguments",
    "create_data_layer",
    "credentials_configured",
    "ensure_auth_secret",
    "ensure_schema",
    "help_text",
    "link_citations",
    "login",
    "metrics_figure",
    "parse_command",
    "quality_table",
    "render_answer",
    "render_crawl_progress",
    "render_crawl_report",
    "render_evolutions",
    "render_healing",
    "render_history",
    "render_outcome",
    "render_pending",
    "render_pending_header",
    "render_principal",
    "render_sources",
    "render_tools",
    "render_trend",
    "render_versions",
    "require_credentials",
    "run_ui",
    "session_principal",
]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'evorag.ui' has no attribute {name!r}")
