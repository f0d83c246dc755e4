"""What clients see of the tools: argument types (their constraints become the JSON schema and are checked before
any call) and result shapes (the fields every client can rely on; a result may carry more: extra="allow")."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

# Arguments
SourceName = Annotated[str, Field(min_length=1, max_length=64, description="An indexed source's name.")]
ApprovalId = Annotated[
    str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="Id from list_pending_approvals.")
]
JobId = Annotated[str, Field(pattern=r"^[0-9a-f]{12}$", description="Id from crawl_and_index_documentation.")]
VersionId = Annotated[str, Field(pattern=r"^[0-9a-fA-F]{4,40}$", description="Id from list_versions.")]
ConversationId = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$", description="Id from an earlier talk_to_team.")]
Url = Annotated[str, Field(min_length=1, max_length=2048, description="An http(s) URL.")]
Globs = Annotated[list[Annotated[str, Field(min_length=1, max_length=500)]], Field(max_length=50)]
MaxTokens = Annotated[
    int | None, Field(ge=200, le=200_000, description="Most tokens the result may take (default: the server's "
                      "EVORAG_MCP_RESULT_TOKENS); what does not fit is left out and truncation_note says so.")
]
IncludeSeen = Annotated[
    bool, Field(description="Send results this session already received again (by default they are listed "
                "without their text).")
]


# Results
class _Result(BaseModel):
    model_config = ConfigDict(extra="allow")


class RagAnswer(_Result):
    answer: str
    citations: list[dict[str, Any]]
    sources_used: list[dict[str, Any]]
    metrics: dict[str, Any] | None = None
    model: str
    fallback: bool = False
    note: str | None = None
    answer_id: int | None = None  # what rate_answer takes (None when the usage log could not record the answer)


class CodeExamples(_Result):
    results: list[dict[str, Any]]


class SourceInfo(_Result):
    name: str
    start_url: str | None
    pages: int
    chunks: int
    last_crawl_at: float | None

    @classmethod
    def of(cls, record) -> SourceInfo:
        return cls(
            name=record.name,
            start_url=record.start_url,
            pages=record.pages,
            chunks=record.chunks,
            last_crawl_at=record.last_crawl_at,
        )


class Sources(_Result):
    sources: list[SourceInfo]


class SourceChanges(_Result):
    source: str
    versions: list[str | None]
    since: float | None
    totals: dict[str, int]
    reports: list[dict[str, Any]]


class JobInfo(_Result):
    job_id: str
    status: str
    url: str
    source: str | None
    progress: dict[str, Any]
    report: dict[str, Any] | None = None
    error: str | None = None

    @classmethod
    def of(cls, job) -> JobInfo:
        data = job.to_dict()
        return cls(job_id=data.pop("id"), **data)


class EvolutionResult(_Result):
    status: str
    gate: str | None = None
    reason: str | None = None
    risk: str | None = None
    tool: str | None = None
    version_id: str | None = None
    approval_id: str | None = None


class HealingResult(_Result):
    healed: bool


class Versions(_Result):
    versions: list[dict[str, Any]]


class RollbackResult(_Result):
    version: dict[str, Any]
    added: list[str]
    removed: list[str]


class MetricsReport(_Result):
    history: list[dict[str, Any]]
    trend: dict[str, Any]


class Approvals(_Result):
    approvals: list[dict[str, Any]]


class DecisionResult(_Result):
    approval_id: str
    status: str

    @classmethod
    def of(cls, approval_id: str, result) -> DecisionResult:
        data = public(result.to_dict())
        data.pop("approval_id", None)
        data.pop("id", None)
        return cls(approval_id=approval_id, **data)


class TeamTurnResult(_Result):
    conversation_id: str
    messages: list[dict[str, Any]]
    waiting_for_human: bool
    question: str | None = None
    stop_reason: str | None = None
    outcomes: list[dict[str, Any]]


def public(data: dict) -> dict:
    """An approval request without its internal payload (staging paths, digests)."""
    return {key: value for key, value in data.items() if key != "payload"}
