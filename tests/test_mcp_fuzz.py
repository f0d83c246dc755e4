"""Hypothesis-generated arguments for every MCP tool, through the SDK's in-memory client.

Every call must come back as a result or a clean tool error (isError with a one-line reason; never an
"internal error", which would be an unexpected exception), within a timeout, and the server must keep
answering afterwards. The service is set up so that no case reaches the network or a language model:
crawl URLs are drawn from addresses the URL guard refuses, the answerer has no model (extractive), the agent
team has none either (talk_to_team fails with a clear error before any agent speaks), and the evolution rate limit
is already used up.
"""

from __future__ import annotations

import asyncio
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp.shared.memory import create_connected_server_and_client_session

from evorag.mcp_server import build_server
from evorag.principals import Principal, Role

CALL_TIMEOUT_S = 20.0

# Strings that have hurt parsers, paths and SQL before.
NASTY = [
    "",
    " ",
    "\x00",
    "../../etc",
    "..\\..\\windows",
    "/etc/passwd",
    "%2e%2e%2f",
    "a" * 5000,
    "ünïcødé ✓",
    "🙂" * 50,
    "'; DROP TABLE sources; --",
    "${jndi:ldap://x}",
    "{{7*7}}",
    "\n\r\t",
    "null",
    "[]",
    "{}",
    "\ud800".encode("utf-8", "surrogatepass").decode("utf-8", "replace"),
    "0123456789ab",
    "deadbeef",
]
# URLs the guard refuses without any lookup: other schemes, private and loopback addresses, credentials.
REFUSED_URLS = st.one_of(
    st.sampled_from(
        [
            "file:///etc/passwd",
            "ftp://example.com/",
            "gopher://x/",
            "javascript:alert(1)",
            "data:,x",
            "http://127.0.0.1/",
            "http://localhost:8080/",
            "http://10.0.0.1/docs",
            "http://[::1]/",
            "http://169.254.169.254/latest/meta-data/",
            "http://2130706433/",
            "http://0x7f000001/",
            "http://user:pw@example.com/",
            "http://192.168.0.1:99999/",
            "http:///nohost",
            "http://a b/",
            "http://example.com\\@evil/",
            "//example.com",
            "example.com",
        ]
    ),
    st.builds(
        lambda ip, path: f"http://{ip}/{path}",
        st.ip_addresses(v=4).filter(lambda ip: ip.is_private),
        st.text(max_size=20),
    ),
    st.builds(
        lambda scheme, rest: f"{scheme}://{rest}",
        st.sampled_from(["file", "ssh", "ws", "chrome", "x"]),
        st.text(max_size=40),
    ),
)
HUGE_INTS = st.one_of(
    st.integers(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.sampled_from([0, -1, 1, 2**31, 2**63, -(2**63), 10**30]),
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    HUGE_INTS,
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=200),
    st.sampled_from(NASTY),
)
ANY_JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


def _typed(name: str, schema: dict, *, wild: bool):
    """Values of the declared type (to get past validation); ``wild`` mixes in anything at all."""
    types = {schema.get("type")} | {option.get("type") for option in schema.get("anyOf", [])}
    options = []
    if "url" in name:
        options.append(st.lists(REFUSED_URLS, max_size=6) if "array" in types else REFUSED_URLS)
    elif "string" in types:
        options += [
            st.text(min_size=1, max_size=300),
            st.sampled_from(NASTY),
            st.from_regex(schema.get("pattern", r"[0-9a-f]{4,40}"), fullmatch=True),
        ]
    if "integer" in types or "number" in types:
        options += [st.integers(min_value=-2, max_value=60), HUGE_INTS]
    if "number" in types:
        options.append(st.floats(min_value=0, max_value=0.2))  # keeps crawl waits short
    if "boolean" in types:
        options.append(st.booleans())
    if "array" in types and "url" not in name:
        options.append(st.lists(st.one_of(st.text(max_size=30), st.sampled_from(NASTY)), max_size=60))
    if "null" in types:
        options.append(st.none())
    return st.one_of(*options, ANY_JSON) if wild else st.one_of(*options)


def _arguments(schema: dict):
    """Half well-typed complete calls (they reach the service), half with wrong types or missing fields."""
    properties = schema.get("properties", {})
    required = set(schema.get("required", []))

    def complete(wild: bool):
        fields = {name: _typed(name, spec, wild=wild) for name, spec in properties.items()}
        return st.fixed_dictionaries(
            {n: v for n, v in fields.items() if n in required},
            optional={n: v for n, v in fields.items() if n not in required},
        )

    wild_fields = {name: _typed(name, spec, wild=True) for name, spec in properties.items()}
    anything = st.builds(
        lambda known, extra: {**extra, **known},
        st.fixed_dictionaries({}, optional=wild_fields),
        st.dictionaries(st.text(max_size=12), ANY_JSON, max_size=2),
    )
    return st.one_of(complete(wild=False), complete(wild=True), anything)


class _LoopThread:
    """One event loop in a thread holding one client session, so every case shares a live server."""

    def __init__(self, server) -> None:
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._server = server
        self.session = None
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self._main(),), daemon=True)
        self.thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("the in-memory MCP session did not start")

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        async with create_connected_server_and_client_session(self._server) as session:
            self.session = session
            self._ready.set()
            await self._stop.wait()
        await self._server.aclose()

    def call(self, coroutine, timeout: float = CALL_TIMEOUT_S):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(15)


@pytest.fixture(scope="module")
def fuzz(tmp_path_factory):
    from evorag.tools.rate_limit import SlidingWindowLimiter

    from evorag.service import Evorag

    home = tmp_path_factory.mktemp("mcp-fuzz-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EVORAG_CONFIG", str(home / "no-config.toml"))
        # The int8 ONNX build of the same embedding model: 3 s to load instead of 15.
        service = Evorag(
            home=home,
            embedder="onnx",
            allow_private=False,
            evolutions_per_hour=1,
            api_calls_per_minute=0,  # over a thousand calls a minute: the per-minute limit is tested in test_quotas
            approval_token="fuzz-human-token",
            llm_provider="none",  # extractive answers: no model in the fuzz
        )
    SlidingWindowLimiter(home / "rate_limit.sqlite3", limit=1).acquire("evolution")
    assert service.search("load the model before the timed calls") == []
    # As an admin: every tool's own argument handling is fuzzed, not the role check that refuses before it.
    runner = _LoopThread(build_server(service, principal=Principal("fuzz", Role.ADMIN, via="mcp")))
    tools = {tool.name: tool for tool in runner.call(runner.session.list_tools()).tools}
    yield runner, tools
    runner.close()
    service.close()


def _check(runner, name: str, arguments: dict) -> None:
    result = runner.call(runner.session.call_tool(name, arguments))
    if result.isError:
        text = result.content[0].text
        assert text.strip(), f"{name}: empty error"
        assert "internal error" not in text and "Traceback" not in text, f"{name}({arguments!r}): {text}"
        assert "Output validation error" not in text, text
    else:
        assert isinstance(result.structuredContent, dict), f"{name}: no structured result"


TOOLS_AND_CASES = [
    ("perform_rag_query_with_metrics", 90),
    ("search_code_examples", 90),
    ("get_available_sources", 50),
    ("get_source_changes", 60),
    ("crawl_and_index_documentation", 120),
    ("get_job_status", 80),
    ("cancel_job", 80),
    ("evolve_rag_capability", 80),
    ("self_heal_system", 30),
    ("list_versions", 40),
    ("rollback", 90),
    ("get_metrics_report", 80),
    ("list_pending_approvals", 40),
    ("approve", 90),
    ("reject", 80),
    ("talk_to_team", 60),
    ("list_queue_requests", 40),
    ("cancel_queue_request", 60),
    ("usage_report", 30),
    ("list_proposals", 30),
    ("rate_answer", 60),
]


def test_every_tool_is_fuzzed(fuzz):
    _, tools = fuzz
    assert {name for name, _ in TOOLS_AND_CASES} == {name for name in tools}
    assert sum(cases for _, cases in TOOLS_AND_CASES) >= 1000


@pytest.mark.parametrize("name, cases", TOOLS_AND_CASES, ids=[name for name, _ in TOOLS_AND_CASES])
def test_fuzzed_arguments_never_break_the_server(fuzz, name, cases):
    runner, tools = fuzz

    @settings(
        max_examples=cases,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(arguments=_arguments(tools[name].inputSchema))
    def run(arguments):
        _check(runner, name, arguments)

    run()
    # Still serving, and nothing reached the network: no crawl job was started.
    sources = runner.call(runner.session.call_tool("get_available_sources", {}))
    assert not sources.isError and sources.structuredContent == {"sources": []}
    assert runner._server.service.crawl_jobs() == []
