#!/usr/bin/python3
"""llama_ref.py: the PyTorch reference for Quadtrix's model and optimizer, and the generator
of the fixtures tests/fixtures/*.qfx that the C unit tests compare against.

The model is written out functionally (a dict name -> tensor, no nn.Module) so that every
convention the C side must follow is visible on the page:

  weights    torch Linear layout [out, in]; names as in GGUF (token_embd, blk.<l>.attn_q, ...)
  RMSNorm    y = x * rsqrt(mean(x^2) + eps) * w
  RoPE       llama.cpp 'normal' rope: rotates consecutive pairs (2i, 2i+1) of each head,
             freq_i = theta^(-2i/hd), angle = pos * freq_i, pos = 0..T-1 (NOT rotate_half)
  attention  grouped-query: query head h reads kv head h // (H / KV); scale 1/sqrt(hd);
             causal softmax; heads concatenated in order before attn_output
  block      x += attn(rmsnorm(x)); x += ffn_down(silu(ffn_gate(h)) * ffn_up(h)), h = rmsnorm(x)
  head       rmsnorm(output_norm), then output (or token_embd when embeddings are tied)
  loss       mean cross-entropy over all B*T positions; inputs tokens[:, :T],
             targets tokens[:, 1:]

The reference is computed in float64 from weights drawn in float32, so the stored float32
expectations are the correctly rounded values of the exact computation.

Usage (Debian's PyTorch lives in /usr/bin/python3):
    /usr/bin/python3 tests/reference/llama_ref.py --out tests/fixtures
Output is deterministic: running it twice gives byte-identical files. --check-f32 also
reruns everything in float32 and prints the relative errors a float32 implementation gets.
"""
import argparse
import math
import os
import struct

import numpy as np
import torch
import torch.nn.functional as F

# ----------------------------------------------------------------------------------------
# Fixture configurations

FIXTURES = {
    # GQA (2 query heads per kv head), untied head, ffn_dim not a multiple of 64 on purpose.
    "gqa_untied": dict(vocab_size=96, dim=64, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=96,
                       max_seq_len=32, tie_embeddings=0, B=3, T=16, rope_theta=10000.0,
                       norm_eps=1e-5, seed=1234),
    # Plain multi-head attention, head tied to the embedding.
    "mha_tied": dict(vocab_size=80, dim=48, n_layers=2, n_heads=3, n_kv_heads=3, ffn_dim=128,
                     max_seq_len=32, tie_embeddings=1, B=2, T=24, rope_theta=10000.0,
                     norm_eps=1e-5, seed=5678),
}

# AdamW run recorded in every fixture: 10 steps, warmup 3 then cosine to min_lr, with a
# learning rate large enough that the losses move clearly and clipping triggers at some steps
# (9/10 in gqa_untied, 4/10 in mha_tied).
#
# eps is 1e-4, not the usual 1e-8, on purpose. Adam divides each element by its own gradient
# scale, so an element whose gradients are tiny (an embedding row of a token seen once, a
# cancelling sum) gets a full-size update whose size hangs on the float32 rounding of that
# tiny gradient. With eps = 1e-8 or 1e-6 a correct float32 implementation (the C model, or
# PyTorch in float32) lands 1e-4 to 6e-4 (max |diff| / max |w|) away from this float64
# reference after 10 steps; with eps = 1e-4 such elements move smoothly (update ~ g / eps)
# and the gap is about 1e-5. The larger eps also makes a misplaced eps visible in the test.
OPTIM = dict(lr=1e-2, min_lr=1e-3, warmup_steps=3, total_steps=10, beta1=0.9, beta2=0.95,
             eps=1e-4, weight_decay=0.1, grad_clip=2.0)
OPTIM_ORDER = ["lr", "min_lr", "warmup_steps", "total_steps", "beta1", "beta2", "eps",
               "weight_decay", "grad_clip"]


def f32(x):
    """x rounded to float32 and back: the value the C side reads from an f32 record."""
    return float(np.float32(x))


# ----------------------------------------------------------------------------------------
# Weights

def weight_shapes(c):
    """Ordered (name, shape) of every weight, in the order they are stored."""
    V, C, F_, H, KV = c["vocab_size"], c["dim"], c["ffn_dim"], c["n_heads"], c["n_kv_heads"]
    hd = C // H
    shapes = [("token_embd", (V, C))]
    for l in range(c["n_layers"]):
        p = f"blk.{l}."
        shapes += [(p + "attn_norm", (C,)), (p + "attn_q", (H * hd, C)),
                   (p + "attn_k", (KV * hd, C)), (p + "attn_v", (KV * hd, C)),
                   (p + "attn_output", (C, H * hd)), (p + "ffn_norm", (C,)),
                   (p + "ffn_gate", (F_, C)), (p + "ffn_up", (F_, C)), (p + "ffn_down", (C, F_))]
    shapes.append(("output_norm", (C,)))
    if not c["tie_embeddings"]:
        shapes.append(("output", (V, C)))
    return shapes


def init_weights(c, gen):
    """float32 weights: matrices N(0, 0.02); norm weights 1 + 0.1 N(0, 1) so they matter."""
    w = {}
    for name, shape in weight_shapes(c):
        r = torch.randn(shape, generator=gen, dtype=torch.float32)
        w[name] = 1.0 + 0.1 * r if len(shape) == 1 else 0.02 * r
    return w


# ----------------------------------------------------------------------------------------
# Model

def rmsnorm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps) * w


def rope(x, theta):
    """x [B, T, nh, hd]: rotate the pairs (2i, 2i+1) of every head by pos * theta^(-2i/hd)."""
    B, T, nh, hd = x.shape
    i = torch.arange(hd // 2, dtype=x.dtype)
    freq = theta ** (-2.0 * i / hd)                           # [hd/2]
    ang = torch.arange(T, dtype=x.dtype)[:, None] * freq      # [T, hd/2]
    cos, sin = ang.cos()[None, :, None, :], ang.sin()[None, :, None, :]
    x0, x1 = x[..., 0::2], x[..., 1::2]                       # [B, T, nh, hd/2]
    y0 = x0 * cos - x1 * sin
    y1 = x0 * sin + x1 * cos
    return torch.stack([y0, y1], dim=-1).reshape(B, T, nh, hd)


def attention(x, w, p, c):
    B, T, C = x.shape
    H, KV = c["n_heads"], c["n_kv_heads"]
    hd = C // H
    q = (x @ w[p + "attn_q"].t()).view(B, T, H, hd)
    k = (x @ w[p + "attn_k"].t()).view(B, T, KV, hd)
    v = (x @ w[p + "attn_v"].t()).view(B, T, KV, hd)
    q, k = rope(q, c["rope_theta"]), rope(k, c["rope_theta"])
    # query head h uses kv head h // (H / KV)
    k = k.repeat_interleave(H // KV, dim=2)
    v = v.repeat_interleave(H // KV, dim=2)
    q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)   # [B, H, T, hd]
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(hd)                  # [B, H, T, T]
    causal = torch.ones(T, T, dtype=torch.bool).triu(1)
    scores = scores.masked_fill(causal, float("-inf"))
    out = scores.softmax(dim=-1) @ v                                    # [B, H, T, hd]
    out = out.transpose(1, 2).reshape(B, T, H * hd)                     # heads in order
    return out @ w[p + "attn_output"].t()


def ffn(h, w, p):
    return (F.silu(h @ w[p + "ffn_gate"].t()) * (h @ w[p + "ffn_up"].t())) @ w[p + "ffn_down"].t()


def forward(w, inputs, c):
    """inputs [B, T] int64 -> logits [B, T, V]."""
    eps = c["norm_eps"]
    x = w["token_embd"][inputs]
    for l in range(c["n_layers"]):
        p = f"blk.{l}."
        x = x + attention(rmsnorm(x, w[p + "attn_norm"], eps), w, p, c)
        x = x + ffn(rmsnorm(x, w[p + "ffn_norm"], eps), w, p)
    x = rmsnorm(x, w["output_norm"], eps)
    head = w["token_embd"] if c["tie_embeddings"] else w["output"]
    return x @ head.t()


def loss_fn(w, tokens, c):
    """tokens [B, T+1] -> (logits, mean cross-entropy over the B*T predictions)."""
    inputs, targets = tokens[:, :-1], tokens[:, 1:]
    logits = forward(w, inputs, c)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
    return logits, loss


# ----------------------------------------------------------------------------------------
# Optimizer

def lr_at(o, s):
    """Learning rate of optimizer step s (0-based): linear warmup, then cosine to min_lr."""
    lr, min_lr, warmup, total = o["lr"], o["min_lr"], int(o["warmup_steps"]), int(o["total_steps"])
    if s < warmup:
        return lr * (s + 1) / warmup
    p = (s - warmup) / max(1, total - warmup)
    return min_lr + 0.5 * (lr - min_lr) * (1.0 + math.cos(math.pi * p))


def run_adamw(w, batches, c, o):
    """AdamW (float64) over the batches [S, B, T+1], one step each; decay on 2-D weights only,
    global-norm clipping before each step. Returns losses (before each update), lrs, norms
    (before clipping); updates w in place."""
    params = list(w.values())
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": o["weight_decay"]},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=o["lr"], betas=(o["beta1"], o["beta2"]), eps=o["eps"])
    losses, lrs, gnorms = [], [], []
    for s in range(batches.shape[0]):
        lr = lr_at(o, s)
        for g in opt.param_groups:
            g["lr"] = lr
        opt.zero_grad(set_to_none=True)
        _, loss = loss_fn(w, batches[s], c)
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(params, max_norm=o["grad_clip"])
        opt.step()
        losses.append(loss.item())
        lrs.append(lr)
        gnorms.append(gn.item())
    return losses, lrs, gnorms


# ----------------------------------------------------------------------------------------
# Data: a fixed sparse Markov chain (each token has 4 likely successors), so the model has
# something to learn and the AdamW losses fall clearly instead of wandering around ln(V).

def make_tokens(gen, V, shape):
    succ = torch.randint(0, V, (V, 4), generator=gen)
    n, L = int(np.prod(shape[:-1])), shape[-1]
    out = torch.empty(n, L, dtype=torch.int64)
    out[:, 0] = torch.randint(0, V, (n,), generator=gen)
    for t in range(1, L):
        pick = torch.randint(0, 4, (n,), generator=gen)
        out[:, t] = succ[out[:, t - 1], pick]
    return out.view(*shape)


# ----------------------------------------------------------------------------------------
# Fixture file ("QTXF" v1, little-endian):
#   magic "QTXF", u32 version = 1, u32 n_records, then per record:
#   u32 name_len, name bytes (no NUL), u32 dtype (0 f32, 1 i32), u32 ndim, i64 dims[ndim],
#   data (prod(dims) elements of 4 bytes).

def write_qfx(path, records):
    with open(path, "wb") as f:
        f.write(b"QTXF" + struct.pack("<II", 1, len(records)))
        for name, arr in records:
            if arr.dtype == np.float32:
                dtype = 0
            elif arr.dtype == np.int32:
                dtype = 1
            else:
                raise TypeError(f"{name}: dtype {arr.dtype}")
            nb = name.encode()
            f.write(struct.pack("<I", len(nb)) + nb + struct.pack("<II", dtype, arr.ndim))
            f.write(struct.pack(f"<{arr.ndim}q", *arr.shape))
            f.write(np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<")).tobytes())


def as_f32(t):
    return t.detach().to(torch.float64).numpy().astype(np.float32)


def as_i32(t):
    return t.numpy().astype(np.int32)


def make_fixture(name, c):
    gen = torch.Generator().manual_seed(c["seed"])
    B, T, V = c["B"], c["T"], c["vocab_size"]
    # Hyperparameters rounded to float32 first: the C side reads them from f32 records, and
    # this way both sides use the same values.
    c = dict(c, rope_theta=f32(c["rope_theta"]), norm_eps=f32(c["norm_eps"]))
    o = {k: f32(v) for k, v in OPTIM.items()}
    S = int(o["total_steps"])

    w32 = init_weights(c, gen)
    tokens = make_tokens(gen, V, (B, T + 1))
    adamw_tokens = make_tokens(gen, V, (S, B, T + 1))

    records = [
        ("config", np.array([V, c["dim"], c["n_layers"], c["n_heads"], c["n_kv_heads"],
                             c["ffn_dim"], c["max_seq_len"], c["tie_embeddings"], B, T],
                            dtype=np.int32)),
        ("config_f", np.array([c["rope_theta"], c["norm_eps"]], dtype=np.float32)),
        ("optim", np.array([o[k] for k in OPTIM_ORDER], dtype=np.float32)),
        ("tokens", as_i32(tokens)),
    ]
    records += [(n, as_f32(t)) for n, t in w32.items()]

    # Forward and backward in float64.
    w = {n: t.to(torch.float64).requires_grad_(True) for n, t in w32.items()}
    logits, loss = loss_fn(w, tokens, c)
    loss.backward()
    records += [("logits", as_f32(logits)), ("loss", np.array([loss.item()], dtype=np.float32))]
    records += [("grad." + n, as_f32(t.grad)) for n, t in w.items()]

    # Ten AdamW steps from the same initial weights.
    w = {n: t.to(torch.float64).requires_grad_(True) for n, t in w32.items()}
    losses, lrs, gnorms = run_adamw(w, adamw_tokens, c, o)
    records += [("adamw_tokens", as_i32(adamw_tokens)),
                ("adamw_losses", np.array(losses, dtype=np.float32)),
                ("adamw_lrs", np.array(lrs, dtype=np.float32)),
                ("adamw_gnorms", np.array(gnorms, dtype=np.float32))]
    records += [("final." + n, as_f32(t)) for n, t in w.items()]
    return records, dict(loss=loss.item(), losses=losses, lrs=lrs, gnorms=gnorms)


def check_f32(name, c):
    """Runs the fixture's computations again in float32 (what the C side does) and prints how
    far they land from the float64 reference: a guide for the C tests' tolerances."""
    gen = torch.Generator().manual_seed(c["seed"])
    c = dict(c, rope_theta=f32(c["rope_theta"]), norm_eps=f32(c["norm_eps"]))
    o = {k: f32(v) for k, v in OPTIM.items()}
    w32 = init_weights(c, gen)
    tokens = make_tokens(gen, c["vocab_size"], (c["B"], c["T"] + 1))
    adamw_tokens = make_tokens(gen, c["vocab_size"], (int(o["total_steps"]), c["B"], c["T"] + 1))
    res = {}
    for dt in (torch.float64, torch.float32):
        w = {n: t.to(dt).requires_grad_(True) for n, t in w32.items()}
        logits, loss = loss_fn(w, tokens, c)
        loss.backward()
        grads = {n: t.grad.double() for n, t in w.items()}
        w = {n: t.to(dt).requires_grad_(True) for n, t in w32.items()}
        losses, _, gnorms = run_adamw(w, adamw_tokens, c, o)
        final = {n: t.detach().double() for n, t in w.items()}
        res[dt] = (logits.detach().double(), loss.item(), grads, losses, gnorms, final)
    a, b = res[torch.float64], res[torch.float32]

    def rel(x, y):
        return ((x - y).norm() / y.norm()).item()

    def maxrel(x, y):   # the C tests' measure: max |x - y| / max |y|
        return ((x - y).abs().max() / y.abs().max()).item()

    print(f"{name}: float32 vs float64 relative error: logits {rel(b[0], a[0]):.2e}, "
          f"loss {abs(b[1] - a[1]) / a[1]:.2e}, "
          f"worst grad {max(rel(b[2][n], a[2][n]) for n in a[2]):.2e}, "
          f"worst adamw loss {max(abs(x - y) / y for x, y in zip(b[3], a[3])):.2e}, "
          f"worst grad norm {max(abs(x - y) / y for x, y in zip(b[4], a[4])):.2e}, "
          f"worst final weight {max(maxrel(b[5][n], a[5][n]) for n in a[5]):.2e} (max-abs)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="tests/fixtures", help="output directory")
    ap.add_argument("--only", action="append", help="generate only this fixture (repeatable)")
    ap.add_argument("--check-f32", action="store_true",
                    help="also print how far a float32 run lands from the reference")
    args = ap.parse_args()
    torch.set_num_threads(1)   # one thread: the same reductions, hence bits, every run
    os.makedirs(args.out, exist_ok=True)
    for name, c in FIXTURES.items():
        if args.only and name not in args.only:
            continue
        records, info = make_fixture(name, c)
        path = os.path.join(args.out, name + ".qfx")
        write_qfx(path, records)
        clipped = sum(g > OPTIM["grad_clip"] for g in info["gnorms"])
        print(f"{path}: {len(records)} records, {os.path.getsize(path)} bytes; "
              f"loss {info['loss']:.6f}; adamw losses "
              f"{' '.join(f'{x:.4f}' for x in info['losses'])}; "
              f"grad norms {' '.join(f'{x:.3f}' for x in info['gnorms'])} "
              f"({clipped}/{len(info['gnorms'])} clipped)")
        if args.check_f32:
            check_f32(name, c)


if __name__ == "__main__":
    main()
