"""The Chainlit UI's helpers; the callbacks themselves are in the repository's app.py.

* parsing what the person typed (``parse_command``), Markdown of the service's results (``render_*``);
* Chainlit messages, buttons and progress (``_chat``), agent steps (``AgentSteps``), inline approval
  (``ChainlitApprover``), the dashboard's plot; the chat history's data layer is ``evorag.ui.history`` (it
  imports Chainlit: app.py imports it);
* starting the server (``run_ui``).

Importing Chainlit writes its config into the current directory: the modules here import it inside the functions
that need it (and plotly likewise), so the CLI imports this package without touching Chainlit.
"""

from __future__ import annotations

from evorag.ui._approver import ChainlitApprover
from evorag.ui._auth import ensure_auth_secret
from evorag.ui._chat import (
    CrawlProgressMessage,
    confirm_rollback,
    offer_commands,
    say,
    show_costs,
    show_error,
    show_pending_approval,
    show_proposals,
    show_quality,
    show_status,
    show_usage,
    show_versions,
    starters,
)
from evorag.ui._commands import COMMANDS, Command, crawl_arguments, help_text, parse_command
from evorag.ui._launch import run_ui
from evorag.ui._plots import cost_figure, evolutions_figure, metrics_figure, usage_figure
from evorag.ui._render import (
    link_citations,
    quality_table,
    render_answer,
    render_answer_step,
    render_costs,
    render_crawl_progress,
    render_crawl_report,
    render_decision,
    render_effect,
    render_evolutions,
    render_healing,
    render_history,
    render_made_proposals,
    render_outcome,
    render_pending,
    render_pending_header,
    render_principal,
    render_proposals,
    render_rollback,
    render_sources,
    render_status,
    render_team_mode,
    render_team_turn,
    render_tools,
    render_trend,
    render_usage,
    render_versions,
)
from evorag.ui._steps import AgentSteps

__all__ = [
    "COMMANDS",
    "AgentSteps",
    "ChainlitApprover",
    "Command",
    "CrawlProgressMessage",
    "confirm_rollback",
    "cost_figure",
    "crawl_arguments",
    "ensure_auth_secret",
    "evolutions_figure",
    "help_text",
    "link_citations",
    "metrics_figure",
    "offer_commands",
    "parse_command",
    "quality_table",
    "render_answer",
    "render_answer_step",
    "render_costs",
    "render_crawl_progress",
    "render_crawl_report",
    "render_decision",
    "render_effect",
    "render_evolutions",
    "render_healing",
    "render_history",
    "render_made_proposals",
    "render_outcome",
    "render_pending",
    "render_pending_header",
    "render_principal",
    "render_proposals",
    "render_rollback",
    "render_sources",
    "render_status",
    "render_team_mode",
    "render_team_turn",
    "render_tools",
    "render_trend",
    "render_usage",
    "render_versions",
    "run_ui",
    "say",
    "show_costs",
    "show_error",
    "show_pending_approval",
    "show_proposals",
    "show_quality",
    "show_status",
    "show_usage",
    "show_versions",
    "starters",
    "usage_figure",
]
