"""The application layer: ``Evorag`` owns the use cases every interface and Python caller goes through.

    interfaces (CLI, MCP server, UI, Python) -> Evorag -> use case modules -> teams / agents -> tools

Layout: ``_facade`` (the ``Evorag`` class), one module per group of use cases (``_knowledge``, ``_quality``,
``_toolset``, ``_approvals``, ``_teams``, ``_admin``), ``_components`` (the lazily built parts), ``_context``
(what every use case gets), ``_writer`` (the one writer slot), ``_jobs`` (crawl jobs and their journal) and
``_inputs`` (checks of input shared by the use cases); ``_conversations`` (conversations with the team) and
``_accounts`` (logging in to the UI) are use case modules too, and so are ``_library`` (source versions and
change reports), ``_sharing`` (export and import of a source), ``_budgeted`` (results sized for assistants),
``_local_sources`` (local folders and git repositories) and ``_sync`` (the docs of a project's dependencies). See docs/architecture.md.
"""

from typing import TYPE_CHECKING

# The re-exports below are imported when first asked for (``__getattr__`` at the end): importing one of them
# (``from evorag.service import PolicyApprover``) or a submodule (``evorag.service._writer``) then loads what
# it needs, not the whole application layer with every tool it uses (issue 14: cold CLI start).
if TYPE_CHECKING:
    from evorag.service._accounts import (
        FROM_SETTINGS,
        FROM_STORE,
        Login,
        check_credentials,
        credentials_configured,
    )
    from evorag.service._admin import BackupResult, NewCredentials, RestoreResult
    from evorag.service._budgeted import BudgetedSearch
    from evorag.service._conversations import TeamTurn
    from evorag.service._facade import Evorag
    from evorag.service._inputs import default_source_name, require_text, validate_source_name
    from evorag.service._jobs import FINISHED, CrawlJob
    from evorag.service._library import SourceChanges
    from evorag.service._quality import Evaluation, MetricsReport
    from evorag.service._queue import QueueRequest, Schedule
    from evorag.service._request_kinds import (
        PeriodicTask,
        RequestKind,
        TaskContext,
        register_periodic_task,
        register_request_kind,
    )
    from evorag.service._sharing import ExportResult, ImportResult
    from evorag.service._sync import SyncEntry, SyncReport
    from evorag.service._toolset import Rollback
    from evorag.service._writer import WriterSlot

    # The types interfaces receive and hand in, so that an interface imports the service and nothing below it.
    from evorag.tools.answering import Answer
    from evorag.tools.approvals import (
        ApprovalRequest,
        Approver,
        Decision,
        PolicyApprover,
        TerminalApprover,
        needed_role,
    )
    from evorag.tools.crawl_job import CrawlProgress, CrawlReport
    from evorag.tools.environment_doctor import DoctorReport
    from evorag.tools.evolution import EvolutionOutcome
    from evorag.tools.result_budget import SeenResults
    from evorag.tools.types import CrawlRequest, Hit
    from evorag.tools.versions import display as display_version
    from evorag.tools.versions import source_label

__all__ = [
    "FINISHED",
    "FROM_SETTINGS",
    "FROM_STORE",
    "Answer",
    "ApprovalRequest",
    "Approver",
    "BackupResult",
    "BudgetedSearch",
    "CrawlJob",
    "CrawlProgress",
    "CrawlReport",
    "CrawlRequest",
    "Decision",
    "DoctorReport",
    "Evaluation",
    "EvolutionOutcome",
    "Evorag",
    "ExportResult",
    "Hit",
    "ImportResult",
    "Login",
    "MetricsReport",
    "NewCredentials",
    "PeriodicTask",
    "PolicyApprover",
    "QueueRequest",
    "RequestKind",
    "RestoreResult",
    "Rollback",
    "Schedule",
    "SeenResults",
    "SourceChanges",
    "SyncEntry",
    "SyncReport",
    "TaskContext",
    "TeamTurn",
    "TerminalApprover",
    "WriterSlot",
    "check_credentials",
    "credentials_configured",
    "default_source_name",
    "display_version",
    "needed_role",
    "register_periodic_task",
    "register_request_kind",
    "require_text",
    "source_label",
    "validate_source_name",
]

# Where each re-export lives: {module: names}; "display_version" is evorag.tools.versions.display.
_LAZY_MODULES = {
    "evorag.service._accounts": ("FROM_SETTINGS", "FROM_STORE", "Login", "check_credentials",
                                 "credentials_configured"),
    "evorag.service._admin": ("BackupResult", "NewCredentials", "RestoreResult"),
    "evorag.service._budgeted": ("BudgetedSearch",),
    "evorag.service._conversations": ("TeamTurn",),
    "evorag.service._facade": ("Evorag",),
    "evorag.service._inputs": ("default_source_name", "require_text", "validate_source_name"),
    "evorag.service._jobs": ("FINISHED", "CrawlJob"),
    "evorag.service._library": ("SourceChanges",),
    "evorag.service._quality": ("Evaluation", "MetricsReport"),
    "evorag.service._queue": ("QueueRequest", "Schedule"),
    "evorag.service._request_kinds": ("PeriodicTask", "RequestKind", "TaskContext", "register_periodic_task",
                                      "register_request_kind"),
    "evorag.service._sharing": ("ExportResult", "ImportResult"),
    "evorag.service._sync": ("SyncEntry", "SyncReport"),
    "evorag.service._toolset": ("Rollback",),
    "evorag.service._writer": ("WriterSlot",),
    "evorag.tools.answering": ("Answer",),
    "evorag.tools.approvals": ("ApprovalRequest", "Approver", "Decision", "PolicyApprover", "TerminalApprover",
                               "needed_role"),
    "evorag.tools.crawl_job": ("CrawlProgress", "CrawlReport"),
    "evorag.tools.environment_doctor": ("DoctorReport",),
    "evorag.tools.evolution": ("EvolutionOutcome",),
    "evorag.tools.result_budget": ("SeenResults",),
    "evorag.tools.types": ("CrawlRequest", "Hit"),
    "evorag.tools.versions": ("display_version", "source_label"),
}
_LAZY = {name: module for module, names in _LAZY_MODULES.items() for name in names}
_RENAMED = {"display_version": "display"}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'evorag.service' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), _RENAMED.get(name, name))
    globals()[name] = value  # the next lookup is an ordinary one
    return value
