"""A small greedy/sampling decoder for llama-architecture checkpoints, written for CPU decode speed.

Why not ``transformers.generate``: for a 135M-parameter model one decode step is ~600 tiny tensor
operations, so per-call overhead and float32 weight traffic (540 MB per token) dominate. This
decoder keeps weights as int4 with group size 32 (the same grid as the Q4_1 file, so requantizing
it loses nothing but the bfloat16 rounding of the scales), fuses q/k/v and gate/up into one matmul
each, keeps the residual stream and the KV cache in float32, and scores only 32 candidate tokens
exactly. bench/bench_llm.py measures each of these choices against ``generate()``.

Prompts (many tokens at once) go through bfloat16 dense weights instead: int4 kernels are tuned
for one token at a time, dense bfloat16 matmuls for many.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from evorag.agents.model_clients._gguf import LlamaCheckpoint

_GROUP = 32  # Q4_1 and Q8_0 blocks are 32 weights wide
_PREFILL_DENSE_FROM = 8  # prompt chunks at least this long use the dense weights


def int4_kernels_available() -> bool:
    ops = torch.ops.aten
    return hasattr(ops, "_weight_int4pack_mm_for_cpu") and hasattr(ops, "_convert_weight_to_int4pack_for_cpu")


class _Int4Linear:
    """Weight-only asymmetric int4 (group size 32) on torch's CPU int4 kernel; bfloat16 in and out."""

    def __init__(self, weight: torch.Tensor) -> None:
        out_features, in_features = weight.shape
        padded = -out_features % 16  # the packing kernel wants a multiple of 16 rows
        if padded:
            weight = torch.cat([weight, weight.new_zeros(padded, in_features)])
        groups = weight.float().view(out_features + padded, in_features // _GROUP, _GROUP)
        low, high = groups.amin(-1), groups.amax(-1)
        scales = (high - low).clamp(min=1e-8) / 15
        levels = ((groups - low[..., None]) / scales[..., None]).round().clamp(0, 15)
        self.packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(
            levels.to(torch.int32).view(out_features + padded, in_features), 2
        )
        # The kernel computes (level - 8) * scale + zero.
        zeros = low + scales * 8
        self.scales_and_zeros = (
            torch.stack([scales, zeros], -1).transpose(0, 1).contiguous().to(torch.bfloat16)
        )
        self.out_features = out_features

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.ops.aten._weight_int4pack_mm_for_cpu(x, self.packed, _GROUP, self.scales_and_zeros)
        return y if y.shape[-1] == self.out_features else y[..., : self.out_features]


class _DenseLinear:
    def __init__(self, weight: torch.Tensor, dtype: torch.dtype = torch.bfloat16) -> None:
        self.weight = weight.to(dtype).contiguous()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight)


class _Layer:
    def __init__(self, layer: Any, weight_format: str, dtype: torch.dtype) -> None:
        qkv = torch.cat([layer.q, layer.k, layer.v])
        gate_up = torch.cat([layer.gate, layer.up])
        self.attn_norm = layer.attn_norm.float()
        self.ffn_norm = layer.ffn_norm.float()
        self.dense = tuple(_DenseLinear(w, dtype) for w in (qkv, layer.o, gate_up, layer.down))
        if weight_format == "int4":
            self.step = tuple(_Int4Linear(w) for w in (qkv, layer.o, gate_up, layer.down))
        else:
            self.step = self.dense


class LlamaDecoder:
    """Generates token ids from prompt token ids. Not thread-safe: run one generation at a time.

    ``weight_format``: "int4" (default where torch has the kernels), "bf16", or "fp32" (slow; a
    reference for benchmarks).
    """

    def __init__(
        self, checkpoint: LlamaCheckpoint, *, weight_format: str | None = None, candidates: int = 32
    ) -> None:
        shape = checkpoint.shape
        weight_format = weight_format or ("int4" if int4_kernels_available() else "bf16")
        if weight_format == "int4" and (shape.hidden % _GROUP or shape.intermediate % _GROUP):
            weight_format = "bf16"
        if weight_format not in ("int4", "bf16", "fp32"):
            raise ValueError(f"unknown weight format {weight_format!r}")
        self.weight_format = weight_format
        self.act = torch.float32 if weight_format == "fp32" else torch.bfloat16
        self.shape = shape
        self.context_length = shape.context_length
        self.embedding = checkpoint.embedding.float().contiguous()
        self.exact_head = (
            self.embedding if checkpoint.lm_head is checkpoint.embedding else checkpoint.lm_head.float()
        )
        self.head = (
            _Int4Linear(self.exact_head)
            if weight_format == "int4"
            else _DenseLinear(self.exact_head, self.act)
        )
        self.norm = checkpoint.norm.float()
        self.layers = [_Layer(layer, weight_format, self.act) for layer in checkpoint.layers]
        self.candidates = min(candidates, self.exact_head.shape[0])
        inv_freq = 1.0 / (
            shape.rope_theta ** (torch.arange(0, shape.head_dim, 2, dtype=torch.float64) / shape.head_dim)
        )
        angles = torch.outer(torch.arange(shape.context_length, dtype=torch.float64), inv_freq)
        angles = torch.cat([angles, angles], -1)
        self.cos, self.sin = angles.cos().float(), angles.sin().float()
        self.scale = 1 / math.sqrt(shape.head_dim)

    def _forward(
        self, tokens: torch.Tensor, pos: int, cache: list[tuple[torch.Tensor, torch.Tensor]]
    ) -> torch.Tensor:
        """Run ``tokens`` (1-D) at positions ``pos..``; return the final hidden state of the last token."""
        s = self.shape
        count = tokens.shape[0]
        if count > 1 and pos:
            raise ValueError("several tokens at once only from position 0 (the causal mask assumes it)")
        heads, kv_heads, head_dim, half = s.heads, s.kv_heads, s.head_dim, s.head_dim // 2
        end = pos + count
        cos = self.cos[pos:end].view(count, 1, head_dim)
        sin = self.sin[pos:end].view(count, 1, head_dim)
        dense = count >= _PREFILL_DENSE_FROM
        x = F.embedding(tokens, self.embedding)
        for layer, (keys, values) in zip(self.layers, cache):
            qkv_proj, o_proj, gate_up_proj, down_proj = layer.dense if dense else layer.step
            h = F.rms_norm(x, (s.hidden,), layer.attn_norm, s.rms_eps).to(self.act)
            qkv = qkv_proj(h).float().view(count, heads + 2 * kv_heads, head_dim)
            # Rotary embedding on q and k together: every head uses the same angles.
            qk = qkv[:, : heads + kv_heads]
            qk = qk * cos + torch.cat((-qk[..., half:], qk[..., :half]), -1) * sin
            keys[:, pos:end] = qk[:, heads:].transpose(0, 1)
            values[:, pos:end] = qkv[:, heads + kv_heads :].transpose(0, 1)
            if count == 1:
                # One query: two small batched matmuls beat SDPA's setup cost.
                q = qk[0, :heads].view(kv_heads, heads // kv_heads, head_dim)
                scores = torch.bmm(q, keys[:, :end].transpose(1, 2)).mul_(self.scale)
                attn = torch.bmm(torch.softmax(scores, -1), values[:, :end]).view(1, heads * head_dim)
            else:
                attn = F.scaled_dot_product_attention(
                    qk[:, :heads].transpose(0, 1).unsqueeze(0),
                    keys[:, :end].unsqueeze(0),
                    values[:, :end].unsqueeze(0),
                    is_causal=True,
                    enable_gqa=True,
                )
                attn = attn[0].transpose(0, 1).reshape(count, heads * head_dim)
            x = x + o_proj(attn.to(self.act)).float()
            h = F.rms_norm(x, (s.hidden,), layer.ffn_norm, s.rms_eps).to(self.act)
            gate, up = gate_up_proj(h).split(s.intermediate, -1)
            x = x + down_proj(F.silu(gate) * up).float()
        return F.rms_norm(x[-1:], (s.hidden,), self.norm, s.rms_eps)

    def _candidates(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The most likely next tokens by the fast head, with exact float32 logits."""
        rough = self.head(hidden.to(self.act))[0]
        ids = rough.topk(self.candidates).indices
        return ids, self.exact_head[ids] @ hidden[0]

    def _new_cache(self, length: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        s = self.shape
        return [
            (torch.empty(s.kv_heads, length, s.head_dim), torch.empty(s.kv_heads, length, s.head_dim))
            for _ in self.layers
        ]

    @torch.inference_mode()
    def next_token_logits(self, prompt: Sequence[int]) -> torch.Tensor:
        """Exact float32 logits over the vocabulary after ``prompt`` (for checks, not for decoding).

        The last token goes through the one-token decode path, the others through the prompt path.
        """
        cache = self._new_cache(len(prompt))
        if len(prompt) > 1:
            self._forward(torch.tensor(list(prompt[:-1]), dtype=torch.long), 0, cache)
        hidden = self._forward(torch.tensor(list(prompt[-1:]), dtype=torch.long), len(prompt) - 1, cache)
        return self.exact_head @ hidden[0]

    @torch.inference_mode()
    def generate(
        self,
        prompt: Sequence[int],
        *,
        max_new_tokens: int,
        temperature: float = 0.0,
        stop_ids: frozenset[int] = frozenset(),
        should_stop: Callable[[], bool] = lambda: False,
        seed: int | None = None,
    ) -> Iterator[int]:
        """Yield new token ids: greedy at temperature 0, else sampled among the 32 best candidates.

        Stops after a token in ``stop_ids`` (which is yielded), after ``max_new_tokens``, or as soon
        as ``should_stop()`` is true. Raises ValueError for an empty prompt or one that leaves no room
        in the context window.
        """
        if not prompt:
            raise ValueError("empty prompt")
        total = len(prompt) + max_new_tokens
        if len(prompt) >= self.context_length:
            raise ValueError(
                f"prompt of {len(prompt)} tokens does not fit the {self.context_length}-token context"
            )
        total = min(total, self.context_length)
        cache = self._new_cache(total)
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        hidden = self._forward(torch.tensor(list(prompt), dtype=torch.long), 0, cache)
        pos = len(prompt)
        while True:
            if should_stop():
                return
            ids, logits = self._candidates(hidden)
            if temperature > 0:
                probs = torch.softmax(logits / temperature, -1)
                token = int(ids[torch.multinomial(probs, 1, generator=generator)])
            else:
                token = int(ids[logits.argmax()])
            yield token
            if token in stop_ids or pos + 1 >= total:
                return
            hidden = self._forward(torch.tensor([token]), pos, cache)
            pos += 1
