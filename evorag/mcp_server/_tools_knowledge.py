"""MCP tools over the indexed documentation: answer, search, sources, crawl jobs, answer quality."""

from __future__ import annotations

from typing import Annotated

import anyio
from mcp.server.fastmcp import Context
from mcp.types import ToolAnnotations
from pydantic import Field

from evorag.mcp_server._models import (
    CodeExamples,
    Globs,
    IncludeSeen,
    JobId,
    JobInfo,
    MaxTokens,
    MetricsReport,
    RagAnswer,
    SourceChanges,
    SourceInfo,
    SourceName,
    Sources,
    Url,
)
from evorag.mcp_server._progress import CrawlProgress
from evorag.mcp_server._registration import READ_ONLY, ToolGroup, host
from evorag.service import CrawlRequest

tools = ToolGroup()


@tools.tool("ask", annotations=READ_ONLY)
async def perform_rag_query_with_metrics(
    query: Annotated[str, Field(min_length=1, max_length=4000, description="The question to answer.")],
    ctx: Context,
    source_filter: Annotated[SourceName | None, Field(description="Only search this source.")] = None,
    enable_evaluation: Annotated[
        bool, Field(description="Score the answer (grounding, ROUGE, nDCG, code, overall) and store the report.")
    ] = True,
    max_tokens: MaxTokens = None,
    include_seen: IncludeSeen = False,
) -> RagAnswer:
    """Answer a question from the indexed documentation with numbered [n] citations and a correctness
    report; falls back to quoting the top sources when the language model is unavailable. The result fits
    max_tokens: sources' text is left out or shortened by whole blocks (never inside a code block), and
    truncation_note says so."""
    server = host(ctx)
    answer = await server.service.aask_within_budget(query, source=source_filter, evaluate=enable_evaluation,
                                                     max_tokens=max_tokens, seen=server.seen_results(),
                                                     include_seen=include_seen)
    return RagAnswer(**answer)


@tools.tool("search", annotations=READ_ONLY)
async def search_code_examples(
    query: Annotated[str, Field(min_length=1, max_length=4000, description="What the code should do.")],
    ctx: Context,
    source_filter: Annotated[SourceName | None, Field(description="Only search this source.")] = None,
    limit: Annotated[int, Field(ge=1, le=50, description="Number of examples.")] = 5,
    offset: Annotated[int, Field(ge=0, le=49, description="Skip this many results of the ranking (continue "
                                 "from a truncated result's next_offset).")] = 0,
    max_tokens: MaxTokens = None,
    include_seen: IncludeSeen = False,
) -> CodeExamples:
    """Find code examples in the indexed documentation (hybrid dense + BM25 search over code blocks). The
    result fits max_tokens: results are kept whole while they fit, a code block is never split, and
    truncation_note says what was left out and how to get it."""
    server = host(ctx)
    service, seen = server.service, server.seen_results()
    found = await anyio.to_thread.run_sync(
        lambda: service.search_within_budget(query, source=source_filter, limit=limit, code=True, offset=offset,
                                             max_tokens=max_tokens, seen=seen, include_seen=include_seen))
    return CodeExamples(**found.to_dict())


@tools.tool("list_sources", annotations=READ_ONLY)
async def get_available_sources(ctx: Context) -> Sources:
    """List the indexed documentation sources with their page and chunk counts and last crawl time."""
    records = await anyio.to_thread.run_sync(host(ctx).service.sources)
    return Sources(sources=[SourceInfo.of(record) for record in records])


@tools.tool("list_sources", annotations=READ_ONLY)
async def get_source_changes(
    source: Annotated[str, Field(min_length=1, max_length=200,
                                 description="NAME (every version) or NAME@VERSION / NAME@latest.")],
    ctx: Context,
    since: Annotated[str | None, Field(max_length=64, description="Only crawls that ended since then: a date "
                                       "(2024-05-01), a time (2024-05-01T12:00:00Z) or an age (1h, 7d).")] = None,
    limit: Annotated[int, Field(ge=1, le=100, description="At most this many change reports, newest first.")] = 20,
) -> SourceChanges:
    """What the crawls of a documentation source changed: per crawl, the pages added, removed and changed,
    and for a changed page the sections whose text changed with a short diff. Use it to learn what changed in
    a library's docs since a date."""
    changes = await anyio.to_thread.run_sync(
        lambda: host(ctx).service.source_changes(source, since=since, limit=limit))
    return SourceChanges(**changes.to_dict())


@tools.tool("crawl", annotations=ToolAnnotations(openWorldHint=True))
async def crawl_and_index_documentation(
    url: Annotated[Url, Field(description="Start URL of the documentation site.")],
    ctx: Context,
    source: Annotated[SourceName | None, Field(description="Source name (default: from the host).")] = None,
    max_pages: Annotated[
        int | None, Field(ge=1, le=100_000, description="Stop after this many pages (default: the server's "
                          "EVORAG_MAX_PAGES).")
    ] = None,
    max_depth: Annotated[
        int | None, Field(ge=0, le=50, description="Follow links this deep (default: the server's "
                          "EVORAG_MAX_DEPTH).")
    ] = None,
    include: Annotated[Globs, Field(description="Only URLs matching these globs.")] = [],  # noqa: B006
    exclude: Annotated[Globs, Field(description="Skip URLs matching these globs.")] = [],  # noqa: B006
    wait_seconds: Annotated[
        float, Field(ge=0, le=60, description="Wait this long for the crawl to finish, streaming progress, "
                     "before returning.")
    ] = 5.0,
) -> JobInfo:
    """Crawl a documentation site and index it as a background job; returns the job id at once or
    after ``wait_seconds``. Follow it with get_job_status; re-crawls only re-index what changed."""
    server = host(ctx)
    job = await server.service.start_crawl(CrawlRequest(url=url, source=source, max_pages=max_pages,
                                                        max_depth=max_depth, include=list(include),
                                                        exclude=list(exclude)))
    server.count_crawl_job(job)
    return JobInfo.of(await server.service.wait_crawl_job(job.id, wait_seconds, on_change=CrawlProgress(ctx)))


@tools.tool("job_status", annotations=READ_ONLY)
async def get_job_status(job_id: JobId, ctx: Context) -> JobInfo:
    """Status of a crawl job: queued, running, done (with its report), failed (with the error),
    cancelled, or interrupted (the server stopped during it; the error says how to resume)."""
    return JobInfo.of(await anyio.to_thread.run_sync(host(ctx).service.crawl_job, job_id))


@tools.tool("cancel_job", annotations=ToolAnnotations(destructiveHint=False, idempotentHint=True))
async def cancel_job(job_id: JobId, ctx: Context) -> JobInfo:
    """Stop a crawl job. Pages indexed so far stay; crawling the same URL again resumes."""
    service = host(ctx).service
    job = await anyio.to_thread.run_sync(service.cancel_crawl_job, job_id)
    return JobInfo.of(await service.wait_crawl_job(job.id, 10.0))


@tools.tool("metrics", annotations=READ_ONLY)
async def get_metrics_report(
    ctx: Context,
    last: Annotated[int, Field(ge=1, le=1000, description="How many of the newest answer reports.")] = 20,
) -> MetricsReport:
    """Answer-quality history (grounding, ROUGE, nDCG, code, overall) and the improvement trend."""
    service = host(ctx).service
    report = await anyio.to_thread.run_sync(lambda: service.metrics_report(last=last))
    return MetricsReport(history=report.history, trend=report.trend.to_dict())
