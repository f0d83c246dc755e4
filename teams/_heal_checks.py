"""The checks healing runs beyond the fast part checks: answer quality, deployed tools through their recorded
examples, sources whose pages vanished, the index alias and the embedder setting.

Each check is a ``CheckResult``; a failing one names the fix it proposes (``fix_kind``: repair, rollback,
re-crawl, config or operator; ``fix``: the command or action). Checks change nothing: the healing flow
(``evorag.teams._healing``) applies the fixes, each through its gate or approval.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import httpx
from evorag.tools.catalog import Catalog
from evorag.tools.metrics_store import MetricsStore
from evorag.tools.tool_examples import normalized
from evorag.tools.url_guard import check_url

from evorag.errors import EvoragError
from evorag.settings import Settings

FIX_KINDS = ("repair", "rollback", "re-crawl", "config", "operator")
# A drop of the newer half's mean below the older half's by this share of it is a finding (a real decline, not
# the noise of a few questions).
QUALITY_DROP = 0.15
QUALITY_WINDOW = 10
PAGE_SAMPLE = 5  # pages of each source fetched again (more when the description is about the source)
_PLACEHOLDERS = {"string": "example", "integer": 1, "number": 1.0, "boolean": True, "array": [], "object": {}}


@dataclass(slots=True)
class CheckResult:
    name: str
    ok: bool
    detail: str = ""
    target: str | None = None  # e.g. the failing tool's or source's name
    fix_kind: str | None = None  # one of FIX_KINDS when the check fails
    fix: str = ""  # the proposed command or action

    def to_dict(self) -> dict:
        return asdict(self)


def answer_quality_check(settings: Settings, *, window: int = QUALITY_WINDOW) -> CheckResult:
    """The recent answers' ``overall`` score: a decline of more than ``QUALITY_DROP`` is a finding."""
    if not settings.metrics_path.exists():
        return CheckResult("answer_quality", True, "no answers recorded yet")
    trend = MetricsStore(settings.metrics_path).trend(window, metric="overall")
    if trend.direction == "insufficient data" or trend.window < 4:
        return CheckResult("answer_quality", True, f"{trend.window} scored answers: too few to see a trend")
    change = trend.relative_change
    dropped = trend.direction == "declining" and change is not None and change <= -QUALITY_DROP
    detail = (f"the overall score of the last {trend.window} answers is {trend.direction}"
              + (f" ({change:+.0%} newer half vs older half)" if change is not None else ""))
    if not dropped:
        return CheckResult("answer_quality", True, detail)
    return CheckResult("answer_quality", False, detail, fix_kind="re-crawl",
                       fix="evorag gaps --crawl (crawl what the weak answers missed), then re-crawl stale sources")


def tool_example_problems(registry, manifest) -> list[str]:
    """What a deployed tool's recorded examples show: one line per example whose result changed or whose call
    failed. A tool with no examples gets one call with placeholder arguments of its schema's types: only a
    call that cannot run at all (no result from the sandbox) is a problem, a raised error is an answer."""
    examples = [e for e in manifest.examples if isinstance(e, dict) and isinstance(e.get("arguments"), dict)]
    problems = []
    for example in examples:
        try:
            result = registry.call(manifest.name, example["arguments"])
        except EvoragError as exc:
            problems.append(f"example {_short(example['arguments'])} failed: {exc}")
            continue
        if "result" in example and normalized(result) != normalized(example["result"]):
            problems.append(f"example {_short(example['arguments'])} returned {_short(result)}, "
                            f"recorded {_short(example['result'])}")
    if examples:
        return problems
    arguments = _placeholder_arguments(manifest.parameters_schema)
    try:
        registry.call(manifest.name, arguments)
    except EvoragError as exc:
        if "raised" not in str(exc):  # the tool answered with its own error: it runs
            problems.append(f"a call with {_short(arguments)} could not run: {exc}")
    return problems


def source_checks(settings: Settings, *, focus: frozenset[str] = frozenset(), timeout: float = 5.0
                  ) -> list[CheckResult]:
    """Fetch a sample of each crawled web source's pages again: half or more gone (HTTP 404/410) is a finding
    with a re-crawl proposed. Addresses go through the URL guard with the home's ``allow_private``."""
    if not settings.catalog_path.exists():
        return []
    catalog = Catalog(settings.catalog_path)
    try:
        sources = [(s.name, s.start_url, sorted(catalog.pages(s.name))) for s in catalog.sources()]
    finally:
        catalog.close()
    checks = []
    for name, start_url, urls in sources:
        if not start_url or not start_url.startswith(("http://", "https://")) or not urls:
            continue
        sample = urls[: PAGE_SAMPLE * (4 if name in focus else 1)]
        checked, gone = 0, []
        for url in sample:
            vanished = _vanished(url, settings.allow_private, timeout)
            if vanished is None:  # refused or unreachable: no evidence, and no point in waiting on the rest
                break
            checked += 1
            if vanished:
                gone.append(url)
        detail = f"{len(gone)} of {checked} sampled pages are gone" + (f" (e.g. {gone[0]})" if gone else "")
        if not checked:
            detail = "not checked: its pages are refused by the URL guard or the host does not answer"
        if gone and len(gone) * 2 >= checked:
            checks.append(CheckResult(f"source:{name}", False, detail, target=name, fix_kind="re-crawl",
                                      fix=f"evorag crawl {start_url} --source {name}"))
        else:
            checks.append(CheckResult(f"source:{name}", True, detail, target=name))
    return checks


def _vanished(url: str, allow_private: bool, timeout: float) -> bool | None:
    """Whether the page answers 404/410; None when the URL guard refuses it or the host does not answer."""
    try:
        check_url(url, allow_private=allow_private)
        response = httpx.get(url, timeout=timeout, follow_redirects=False)
    except (EvoragError, httpx.HTTPError):
        return None
    return response.status_code in (404, 410)


def expected_model(settings: Settings) -> str | None:
    """The embedding model the settings would open the index with (without loading it)."""
    if settings.embedder in ("local", "onnx"):
        from evorag.tools.embedding._local import MODEL_NAME

        return MODEL_NAME if settings.embedder == "local" else MODEL_NAME + "-int8"
    return settings.embedding_model


def setting_for_model(model: str) -> str:
    """The setting that makes evorag embed with ``model``."""
    from evorag.tools.embedding._local import MODEL_NAME

    if model == MODEL_NAME:
        return "EVORAG_EMBEDDER=local"
    if model == MODEL_NAME + "-int8":
        return "EVORAG_EMBEDDER=onnx"
    return f"EVORAG_EMBEDDING_MODEL={model} (with EVORAG_EMBEDDER=openai or ollama)"


def index_checks(settings: Settings, store) -> list[CheckResult]:
    """The index alias and the embedder setting, read from the collections without opening one (opening with a
    wrong embedder setting would create an empty collection and point the alias at it).

    ``index_alias``: the alias points at an empty collection while another one of the alias holds points.
    ``embedder_setting``: the settings embed with another model than the one of the indexed collection."""
    try:
        collections = store.collections()
    except EvoragError as exc:
        return [CheckResult("index_alias", False, f"the index cannot be read: {exc}", fix_kind="config",
                            fix="check EVORAG_QDRANT_URL / EVORAG_QDRANT_API_KEY")]
    active = next((c for c in collections if c["active"]), None)
    filled = sorted((c for c in collections if c["points"]), key=lambda c: -c["points"])
    if active is None:
        return [CheckResult("index_alias", True, "no index yet")]
    expected = expected_model(settings)
    checks = []
    if active["points"] == 0 and filled:
        best = filled[0]
        fix = (f"point the alias at {best['collection']}" if best["model"] == expected
               else f"set {setting_for_model(best['model'])}, then point the alias at {best['collection']}")
        checks.append(CheckResult(
            "index_alias", False, f"alias {store.alias!r} points at {active['collection']}, which is empty, while "
            f"{best['collection']} holds {best['points']} points ({best['model']})", target=best["collection"],
            fix_kind="config", fix=fix))
    else:
        checks.append(CheckResult("index_alias", True, f"alias {store.alias!r} points at {active['collection']} "
                                  f"({active['points'] if active['points'] is not None else 'unknown'} points)"))
    indexed = filled[0]["model"] if active["points"] == 0 and filled else active["model"]
    if expected is not None and indexed and indexed != expected:
        checks.append(CheckResult(
            "embedder_setting", False, f"the settings embed with {expected}, the index was built with {indexed}: "
            "searches would open a new, empty collection", target=indexed, fix_kind="config",
            fix=f"set {setting_for_model(indexed)} (or re-crawl every source with the new embedder)"))
    else:
        checks.append(CheckResult("embedder_setting", True, f"the settings embed with {expected}, like the index"))
    return checks


def _placeholder_arguments(schema: dict) -> dict:
    properties = schema.get("properties", {}) if isinstance(schema, dict) else {}
    required = schema.get("required", list(properties)) if isinstance(schema, dict) else []
    return {name: _PLACEHOLDERS.get(properties.get(name, {}).get("type"), "example") for name in required}


def _short(value: object, limit: int = 80) -> str:
    text = normalized(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
