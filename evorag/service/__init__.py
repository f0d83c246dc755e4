"""The application layer: ``Evorag`` owns the use cases every interface and Python caller goes through.

    interfaces (CLI, MCP server, UI, Python) -> Evorag -> use case modules -> teams / agents -> tools

Layout: ``_facade`` (the ``Evorag`` class), one module per group of use cases (``_knowledge``, ``_quality``,
``_toolset``, ``_approvals``, ``_teams``, ``_admin``), ``_components`` (the lazily built parts), ``_context``
(what every use case gets), ``_writer`` (the one writer slot), ``_jobs`` (crawl jobs and their journal) and
``_inputs`` (checks of input shared by the use cases). See docs/architecture.md.
"""

from evorag.service._admin import BackupResult, NewCredentials, RestoreResult
from evorag.service._facade import Evorag
from evorag.service._inputs import default_source_name, require_text, validate_source_name
from evorag.service._jobs import FINISHED, CrawlJob
from evorag.service._quality import Evaluation, MetricsReport
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
from evorag.tools.evolution import EvolutionOutcome
from evorag.tools.types import CrawlRequest, Hit

__all__ = [
    "FINISHED",
    "Answer",
    "ApprovalRequest",
    "Approver",
    "BackupResult",
    "CrawlJob",
    "CrawlProgress",
    "CrawlReport",
    "CrawlRequest",
    "Decision",
    "Evaluation",
    "EvolutionOutcome",
    "Evorag",
    "Hit",
    "MetricsReport",
    "NewCredentials",
    "PolicyApprover",
    "RestoreResult",
    "Rollback",
    "TerminalApprover",
    "WriterSlot",
    "default_source_name",
    "needed_role",
    "require_text",
    "validate_source_name",
]
