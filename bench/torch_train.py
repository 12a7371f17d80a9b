#!/usr/bin/python3
"""torch_train.py: the PyTorch baseline for qtx train's throughput.

The same Llama-family model as tests/reference/llama_ref.py (RMSNorm, RoPE on consecutive
pairs, grouped-query causal attention, SwiGLU, no biases, tied or untied head), in float32,
trained with AdamW (decay on 2-D weights only, global-norm clipping) on a warmup + cosine
schedule. Prints one JSON line: {"tokens_per_s": ..., "step_ms": ..., "threads": ...}
(plus the config and the per-step times), timed over --steps steps after --warmup-steps
untimed ones.

Run it through bench/torch_env.sh, which sets the allocator and OpenMP environment that
PyTorch's CPU performance guide recommends; this file does the in-process part:
  - torch.set_num_threads(--threads) (intra-op pool = the cores given to the run);
    one inter-op thread (nothing runs concurrently at op level in a training step);
  - Q/K/V as one matmul and gate/up as one matmul (fewer, larger GEMMs; same math);
  - RoPE as a complex multiply on the (2i, 2i+1) pairs (view_as_complex), one fused op;
  - attention by matmuls with a precomputed additive causal mask (1.13 has no
    F.scaled_dot_product_attention and no torch.compile);
  - AdamW(foreach=True): multi-tensor update instead of a Python loop over parameters;
  - zero_grad(set_to_none=True): no memset of the gradients each step;
  - torch.jit.script on RMSNorm and SwiGLU only with --jit (measured: no gain, see
    torch_env.sh).
Data: uniform random tokens, or --tokens FILE (raw uint16 or int32 ids, see --token-dtype)
read sequentially.

On a GPU (--device cuda, the baseline of issue #7): attention by
F.scaled_dot_product_attention (is_causal: the flash kernel), bf16 autocast with --bf16,
torch.compile with --compile, AdamW(fused=True); the loss's .item() each step synchronises.
"""
import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def rmsnorm(x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def swiglu(gu: torch.Tensor) -> torch.Tensor:
    g, u = gu.chunk(2, dim=-1)
    return F.silu(g) * u


class Block(nn.Module):
    def __init__(self, a, norm):
        super().__init__()
        C, H, KV, Fd = a.dim, a.n_heads, a.n_kv_heads, a.ffn
        self.H, self.KV, self.hd, self.eps = H, KV, C // H, 1e-5
        self.attn_norm = nn.Parameter(torch.ones(C))
        self.qkv = nn.Linear(C, (H + 2 * KV) * self.hd, bias=False)
        self.attn_output = nn.Linear(H * self.hd, C, bias=False)
        self.ffn_norm = nn.Parameter(torch.ones(C))
        self.gate_up = nn.Linear(C, 2 * Fd, bias=False)
        self.ffn_down = nn.Linear(Fd, C, bias=False)
        self.norm, self.act = norm
        self.sdpa = a.device == "cuda"

    def forward(self, x, rope, mask):
        B, T, C = x.shape
        H, KV, hd = self.H, self.KV, self.hd
        h = self.norm(x, self.attn_norm, self.eps)
        q, k, v = self.qkv(h).split([H * hd, KV * hd, KV * hd], dim=-1)
        # RoPE on the pairs (2i, 2i+1): multiply by e^{i pos freq} as complex numbers.
        q = torch.view_as_real(torch.view_as_complex(q.reshape(B, T, H, hd // 2, 2)) * rope)
        k = torch.view_as_real(torch.view_as_complex(k.reshape(B, T, KV, hd // 2, 2)) * rope)
        q = q.reshape(B, T, H, hd).transpose(1, 2)                      # [B, H, T, hd]
        k = k.reshape(B, T, KV, hd).transpose(1, 2)
        v = v.reshape(B, T, KV, hd).transpose(1, 2)
        if KV != H:                       # query head h reads kv head h // (H / KV)
            k = k.repeat_interleave(H // KV, dim=1)
            v = v.repeat_interleave(H // KV, dim=1)
        if self.sdpa:
            y = F.scaled_dot_product_attention(q.to(v.dtype), k.to(v.dtype), v, is_causal=True)
        else:
            att = torch.baddbmm(mask, q.reshape(B * H, T, hd),
                                k.reshape(B * H, T, hd).transpose(1, 2), alpha=1.0 / math.sqrt(hd))
            y = torch.bmm(att.softmax(-1), v.reshape(B * H, T, hd)).view(B, H, T, hd)
        y = y.transpose(1, 2).reshape(B, T, H * hd)
        x = x + self.attn_output(y)
        h = self.norm(x, self.ffn_norm, self.eps)
        return x + self.ffn_down(self.act(self.gate_up(h)))


class Llama(nn.Module):
    def __init__(self, a, norm):
        super().__init__()
        self.token_embd = nn.Embedding(a.vocab, a.dim)
        self.blocks = nn.ModuleList(Block(a, norm) for _ in range(a.n_layers))
        self.output_norm = nn.Parameter(torch.ones(a.dim))
        self.output = None if a.tied else nn.Linear(a.dim, a.vocab, bias=False)
        self.norm = norm[0]
        for n, p in self.named_parameters():
            if p.dim() == 2:
                nn.init.normal_(p, std=0.02)
        hd = a.dim // a.n_heads
        freq = 10000.0 ** (-torch.arange(0, hd, 2, dtype=torch.float64) / hd)
        ang = torch.arange(a.seq, dtype=torch.float64)[:, None] * freq     # [T, hd/2]
        self.register_buffer("rope", torch.polar(torch.ones_like(ang), ang)
                             .to(torch.complex64)[None, :, None, :], persistent=False)
        self.register_buffer("mask", torch.full((a.seq, a.seq), float("-inf")).triu(1),
                             persistent=False)

    def forward(self, idx, targets):
        x = self.token_embd(idx)
        for blk in self.blocks:
            x = blk(x, self.rope, self.mask)
        x = self.norm(x, self.output_norm, 1e-5)
        w = self.token_embd.weight if self.output is None else self.output.weight
        logits = F.linear(x, w).view(-1, w.shape[0])
        return F.cross_entropy(logits, targets.reshape(-1))


def lr_at(s, lr, min_lr, warmup, total):
    if s < warmup:
        return lr * (s + 1) / warmup
    p = (s - warmup) / max(1, total - warmup)
    return min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * min(1.0, p)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--n-layers", type=int, default=4)
    ap.add_argument("--n-heads", type=int, default=8)
    ap.add_argument("--n-kv-heads", type=int, default=None, help="default: n_heads")
    ap.add_argument("--ffn", type=int, default=768)
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=5, help="timed steps")
    ap.add_argument("--warmup-steps", type=int, default=2, help="untimed steps first")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tied", action="store_true")
    ap.add_argument("--tokens", help="token file (raw ids) instead of random tokens")
    ap.add_argument("--token-dtype", default="uint16", choices=["uint16", "int32"])
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--jit", action="store_true", help="torch.jit.script RMSNorm and SwiGLU")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast (cuda)")
    ap.add_argument("--compile", action="store_true", help="torch.compile the model")
    ap.add_argument("--peak-tflops", type=float, default=989.0, help="for MFU (cuda)")
    a = ap.parse_args()
    a.n_kv_heads = a.n_kv_heads or a.n_heads
    if a.dim % a.n_heads or a.n_heads % a.n_kv_heads or (a.dim // a.n_heads) % 2:
        ap.error("dim must divide into n_heads even-sized heads; n_kv_heads must divide n_heads")

    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(a.seed)
    norm = (torch.jit.script(rmsnorm), torch.jit.script(swiglu)) if a.jit else (rmsnorm, swiglu)
    model = Llama(a, norm).to(a.device)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    fused = {"fused": True} if a.device == "cuda" else {"foreach": True}
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, 0.95), eps=1e-8, **fused)
    step_model = torch.compile(model) if a.compile else model
    total = a.warmup_steps + a.steps
    n_tok = a.batch * (a.seq + 1)
    if a.tokens:
        import numpy as np
        data = np.fromfile(a.tokens, dtype=np.uint16 if a.token_dtype == "uint16" else np.int32)
        if len(data) < n_tok:
            sys.exit(f"{a.tokens}: {len(data)} tokens, need at least {n_tok}")
        if int(data.max()) >= a.vocab:
            sys.exit(f"{a.tokens}: token id {int(data.max())} >= --vocab {a.vocab}")
        data = torch.from_numpy(data.astype(np.int64))

    def batch(s):
        if a.tokens:
            off = (s * n_tok) % (len(data) - n_tok + 1)
            t = data[off:off + n_tok].view(a.batch, a.seq + 1)
        else:
            t = torch.randint(0, a.vocab, (a.batch, a.seq + 1))
        return t[:, :-1].to(a.device), t[:, 1:].to(a.device)

    times, losses = [], []
    for s in range(total):
        x, y = batch(s)
        t0 = time.perf_counter()
        for g in opt.param_groups:
            g["lr"] = lr_at(s, a.lr, a.lr / 10, max(1, total // 10), total)
        opt.zero_grad(set_to_none=True)
        with torch.autocast(a.device, dtype=torch.bfloat16, enabled=a.bf16):
            loss = step_model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        dt = time.perf_counter() - t0
        if s >= a.warmup_steps:
            times.append(dt)
    times.sort()
    med = times[len(times) // 2]
    n_params = sum(p.numel() for p in model.parameters())
    n_flop = n_params - (0 if a.tied else a.vocab * a.dim)  # as qtx_model_flops_per_token
    flops_tok = 6.0 * n_flop + 12.0 * a.n_layers * a.seq * a.dim
    print(json.dumps({
        "mfu": (round(a.batch * a.seq / med * flops_tok / (a.peak_tflops * 1e12), 4)
                if a.device == "cuda" else None),
        "device": a.device, "bf16": a.bf16, "compile": a.compile,
        "tokens_per_s": round(a.batch * a.seq / med, 1),
        "step_ms": round(med * 1e3, 2),
        "threads": a.threads,
        "mean_step_ms": round(sum(times) / len(times) * 1e3, 2),
        "steps": a.steps, "params": n_params,
        "loss_first": round(losses[0], 4), "loss_last": round(losses[-1], 4),
        "config": {"dim": a.dim, "n_layers": a.n_layers, "n_heads": a.n_heads,
                   "n_kv_heads": a.n_kv_heads, "ffn": a.ffn, "vocab": a.vocab, "seq": a.seq,
                   "batch": a.batch, "tied": a.tied, "jit": a.jit},
        "torch": torch.__version__,
        "env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MALLOC_CONF",
                                               "OPENBLAS_CORETYPE", "ATEN_CPU_CAPABILITY",
                                               "LD_PRELOAD") if os.environ.get(k)},
    }))


if __name__ == "__main__":
    main()
