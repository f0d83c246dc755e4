"""Local LLM speed: each way we tried to run SmolLM2-135M-Instruct (Q4_1 GGUF) on CPU.

Baseline, measured in the same run: Hugging Face ``generate()`` (greedy, KV cache) on the model
that ``AutoModelForCausalLM.from_pretrained(gguf_file=...)`` dequantizes to float32.

For each variant: load time, first-token latency on a short chat, prompt (prefill) speed on a
~600-token RAG-sized prompt, decode tokens/s (wall clock and per CPU-second of the generating
thread: the second is steadier on a shared machine), and the share of decode steps whose greedy
token equals the float32 reference when both are fed the reference's own continuation.

    python bench/bench_llm.py                       # all variants, 1 and 2 threads
    python bench/bench_llm.py --threads 1 --tokens 64 --skip-hf
    python bench/bench_llm.py --compile             # also torch.compile (slow to compile, no gain here)
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from evorag.agents.model_clients._decoder import LlamaDecoder
from evorag.agents.model_clients._gguf import bundled_model_path, load_tokenizer, read_llama_gguf
from evorag.agents.model_clients._runtime import encode_chat, llama_cpp_importable, pin_torch_threads

SHORT_CHAT = [{"role": "user", "content": "What is Python? Answer in detail."}]
RAG_CONTEXT = (
    "[{n}] Crawling > Local sites: evorag refuses loopback and private addresses by default. Pass "
    "--allow-private or set EVORAG_ALLOW_PRIVATE=true to crawl a site on localhost. The crawler honours "
    "robots.txt, follows sitemaps and llms.txt, and retries failed pages twice with backoff.\n"
)


def rag_chat(target_tokens: int, tokenizer) -> list[dict[str, str]]:
    context = ""
    while len(tokenizer(context)["input_ids"]) < target_tokens:
        context += RAG_CONTEXT.format(n=context.count("[") + 1)
    return [
        {"role": "system", "content": "Answer from the numbered sources only and cite them like [1]."},
        {"role": "user", "content": f"Sources:\n{context}\nQuestion: How do I crawl docs on localhost?"},
    ]


class Timer:
    """Wall and this-thread CPU seconds."""

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.thread_time()
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self.wall, time.thread_time() - self.cpu


def row(name, threads, load, first_ms, prefill, wall, cpu, agree):
    agree_text = "   ref" if agree is None else "   n/a" if math.isnan(agree) else f"{agree:6.1%}"
    print(
        f"{name:34s} {threads:>3} {load:7.1f} {first_ms:9.0f} {prefill:9.0f} {wall:9.1f} {cpu:9.1f} {agree_text}",
        flush=True,
    )


def bench_hf(path: Path, tokenizer, short, rag, tokens: int, threads: int):
    from transformers import AutoModelForCausalLM, DynamicCache

    torch.set_num_threads(threads)
    with Timer() as load:
        model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name).eval()
    with torch.inference_mode():
        short_ids, rag_ids = torch.tensor([short]), torch.tensor([rag])
        model.generate(short_ids, max_new_tokens=2, do_sample=False)  # warm-up
        with Timer() as first:
            model.generate(short_ids, max_new_tokens=1, do_sample=False)
        with Timer() as prefill:
            model(rag_ids, logits_to_keep=1)
        with Timer() as decode:
            out = model.generate(short_ids, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False)
        reference = out[0, len(short) :].tolist()
        row(
            "transformers generate() fp32",
            threads,
            load.wall,
            first.wall * 1000,
            len(rag) / prefill.wall,
            tokens / decode.wall,
            tokens / decode.cpu,
            None,
        )

        with Timer() as decode:
            cache = DynamicCache(config=model.config)
            logits = model(short_ids, past_key_values=cache, use_cache=True).logits
            loop_tokens = []
            for _ in range(tokens):
                token = logits[0, -1].argmax()
                loop_tokens.append(int(token))
                logits = model(token.view(1, 1), past_key_values=cache, use_cache=True).logits
        agree = sum(a == b for a, b in zip(loop_tokens, reference)) / tokens
        row(
            "transformers forward loop fp32",
            threads,
            load.wall,
            first.wall * 1000,
            len(rag) / prefill.wall,
            tokens / decode.wall,
            tokens / decode.cpu,
            agree,
        )
    return reference


def teacher_forced_agreement(decoder: LlamaDecoder, prompt: list[int], reference: list[int]) -> float:
    """Share of steps where the decoder's greedy pick equals the reference, fed the reference tokens."""
    with torch.inference_mode():
        cache = decoder._new_cache(len(prompt) + len(reference))
        hidden = decoder._forward(torch.tensor(prompt), 0, cache)
        hits = 0
        for pos, expected in enumerate(reference, start=len(prompt)):
            ids, logits = decoder._candidates(hidden)
            hits += int(ids[logits.argmax()]) == expected
            hidden = decoder._forward(torch.tensor([expected]), pos, cache)
    return hits / len(reference)


def bench_decoder(name, path, short, rag, tokens, threads, reference, weight_format, compile_step=False):
    pin_torch_threads(threads)
    with Timer() as load:
        decoder = LlamaDecoder(read_llama_gguf(path), weight_format=weight_format)
    if compile_step:
        decoder._forward = torch.compile(decoder._forward, dynamic=True)
    list(decoder.generate(short, max_new_tokens=4))  # warm-up (and compilation)
    with Timer() as first:
        next(iter(decoder.generate(short, max_new_tokens=1)))
    with Timer() as prefill:
        next(iter(decoder.generate(rag, max_new_tokens=1)))
    with Timer() as decode:
        produced = list(decoder.generate(short, max_new_tokens=tokens))  # no stop ids: always full length
    agree = teacher_forced_agreement(decoder, short, reference) if reference else float("nan")
    row(
        name,
        threads,
        load.wall,
        first.wall * 1000,
        len(rag) / prefill.wall,
        len(produced) / decode.wall,
        len(produced) / decode.cpu,
        agree,
    )
    return decoder


def bench_llama_cpp(path, short, rag, tokens, threads, reference):
    from evorag.agents.model_clients._runtime import LlamaCppGenerator

    with Timer() as load:
        generator = LlamaCppGenerator(path, threads)
    kwargs = {"temperature": 0.0, "stop_ids": frozenset(), "should_stop": lambda: False, "seed": None}
    list(generator.generate(short, max_new_tokens=4, **kwargs))
    with Timer() as first:
        list(generator.generate(short, max_new_tokens=1, **kwargs))
    with Timer() as prefill:
        list(generator.generate(rag, max_new_tokens=1, **kwargs))
    with Timer() as decode:
        produced = list(generator.generate(short, max_new_tokens=tokens, **kwargs))
    same = sum(a == b for a, b in zip(produced, reference)) / len(reference) if reference else float("nan")
    # llama.cpp threads work outside this thread: its CPU column is not comparable.
    row(
        "llama.cpp (free-running match)",
        threads,
        load.wall,
        first.wall * 1000,
        len(rag) / prefill.wall,
        len(produced) / decode.wall,
        float("nan"),
        same,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tokens", type=int, default=128, help="new tokens per decode measurement")
    parser.add_argument("--threads", default="1,2", help="torch thread counts to try")
    parser.add_argument("--prompt-tokens", type=int, default=600, help="size of the RAG prompt for prefill")
    parser.add_argument(
        "--skip-hf", action="store_true", help="skip the transformers baseline (no agreement column)"
    )
    parser.add_argument("--compile", action="store_true", help="also try torch.compile on the decoder step")
    args = parser.parse_args()

    path = bundled_model_path()
    print(
        f"model {path.name}; torch {torch.__version__}; {os.cpu_count()} CPUs; "
        f"load average at start {os.getloadavg()[0]:.1f}"
    )
    with Timer() as tok_load:
        tokenizer = load_tokenizer(path)
    with Timer() as read:
        read_llama_gguf(path)
    print(
        f"tokenizer from GGUF {tok_load.wall:.1f} s (cached copy: ~0.2 s); weights read+dequantize {read.wall:.1f} s"
    )
    short = encode_chat(tokenizer, SHORT_CHAT)
    rag = encode_chat(tokenizer, rag_chat(args.prompt_tokens, tokenizer))
    print(f"short prompt {len(short)} tokens, RAG prompt {len(rag)} tokens, decode {args.tokens} tokens\n")
    print(
        f"{'variant':34s} {'thr':>3} {'load s':>7} {'first ms':>9} {'prefill/s':>9} {'decode/s':>9} "
        f"{'tok/cpu-s':>9} {'agree':>6}"
    )

    reference = None
    for threads in [int(t) for t in args.threads.split(",")]:
        if not args.skip_hf:
            reference = bench_hf(path, tokenizer, short, rag, args.tokens, threads)
        bench_decoder("ours fp32 dense", path, short, rag, args.tokens, threads, reference, "fp32")
        bench_decoder("ours bf16 dense", path, short, rag, args.tokens, threads, reference, "bf16")
        bench_decoder(
            "ours int4 + exact top-32 (default)", path, short, rag, args.tokens, threads, reference, "int4"
        )
        if args.compile:
            with Timer() as compile_time:
                bench_decoder(
                    "ours int4 + torch.compile",
                    path,
                    short,
                    rag,
                    args.tokens,
                    threads,
                    reference,
                    "int4",
                    compile_step=True,
                )
            print(f"{'':34s} (torch.compile run incl. compilation: {compile_time.wall:.0f} s)")
        if llama_cpp_importable():
            bench_llama_cpp(path, short, rag, args.tokens, threads, reference)
    if not llama_cpp_importable():
        print("llama.cpp: llama-cpp-python is not installed (it compiles from source for ~13 minutes)")
    print(
        f"\nload average at end {os.getloadavg()[0]:.1f} (2 cores: above ~2, other processes share the CPU)"
    )


if __name__ == "__main__":
    main()
