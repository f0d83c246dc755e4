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
