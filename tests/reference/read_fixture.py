#!/usr/bin/env python3
"""read_fixture.py: reads a Quadtrix reference fixture (.qfx), lists its records and checks it.

Standard library only (no torch, no numpy), so it runs anywhere python3 does. The checks:
  - the header, every record's dtype/shape, and that nothing trails the last record;
  - the records a model fixture must have, with the shapes its "config" implies;
  - the logits and loss, recomputed from the stored weights and tokens by a deliberately
    naive, loop-by-loop forward written independently of llama_ref.py (float64);
  - adamw_lrs against the warmup + cosine formula;
  - with --fd N: N central finite differences of the loss against stored "grad.*" entries.

Usage:
    python3 tests/reference/read_fixture.py tests/fixtures/gqa_untied.qfx [--list] [--fd 4]
Exit status 0 when every check passes, 1 otherwise.
"""
import argparse
import array
import math
import struct
import sys


def read_qfx(path):
    """Returns an ordered dict name -> (dtype, dims, flat list of values)."""
    with open(path, "rb") as f:
        buf = f.read()
    if buf[:4] != b"QTXF":
        raise ValueError(f"{path}: bad magic {buf[:4]!r}")
    version, n = struct.unpack_from("<II", buf, 4)
    if version != 1:
        raise ValueError(f"{path}: version {version}, expected 1")
    off, recs = 12, {}
    for _ in range(n):
        (nl,) = struct.unpack_from("<I", buf, off)
        name = buf[off + 4:off + 4 + nl].decode()
        off += 4 + nl
        dtype, ndim = struct.unpack_from("<II", buf, off)
        off += 8
        dims = list(struct.unpack_from(f"<{ndim}q", buf, off))
        off += 8 * ndim
        numel = math.prod(dims)
        if dtype not in (0, 1):
            raise ValueError(f"{path}: {name}: dtype {dtype}")
        data = array.array("f" if dtype == 0 else "i")
        data.frombytes(buf[off:off + 4 * numel])
        if sys.byteorder != "little":
            data.byteswap()
        if len(data) != numel:
            raise ValueError(f"{path}: {name}: truncated")
        off += 4 * numel
        if name in recs:
            raise ValueError(f"{path}: duplicate record {name}")
        recs[name] = (dtype, dims, data.tolist())
    if off != len(buf):
        raise ValueError(f"{path}: {len(buf) - off} bytes after the last record")
    return recs


# ---- a naive float64 forward, independent of llama_ref.py ------------------------------

def matvec(W, rows, cols, x):
    """W flat [rows, cols] (torch Linear layout [out, in]) times x [cols]."""
    return [sum(W[r * cols + i] * x[i] for i in range(cols)) for r in range(rows)]


def rmsnorm(x, w, eps):
    s = 1.0 / math.sqrt(sum(v * v for v in x) / len(x) + eps)
    return [v * s * wi for v, wi in zip(x, w)]


def rope(vec, n_heads, hd, pos, theta):
    out = list(vec)
    for h in range(n_heads):
        for i in range(hd // 2):
            a = pos * theta ** (-2.0 * i / hd)
            x0, x1 = vec[h * hd + 2 * i], vec[h * hd + 2 * i + 1]
            out[h * hd + 2 * i] = x0 * math.cos(a) - x1 * math.sin(a)
            out[h * hd + 2 * i + 1] = x0 * math.sin(a) + x1 * math.cos(a)
    return out


def forward_seq(W, cfg, seq):
    """seq: T input ids -> T rows of V logits."""
    V, C, L, H, KV, Fd, _, tied = cfg[:8]
    theta, eps = cfg[10], cfg[11]
    hd = C // H
    T = len(seq)
    xs = [W["token_embd"][t * C:(t + 1) * C] for t in seq]
    for l in range(L):
        p = f"blk.{l}."
        hs = [rmsnorm(x, W[p + "attn_norm"], eps) for x in xs]
        qs = [rope(matvec(W[p + "attn_q"], H * hd, C, h), H, hd, t, theta) for t, h in enumerate(hs)]
        ks = [rope(matvec(W[p + "attn_k"], KV * hd, C, h), KV, hd, t, theta) for t, h in enumerate(hs)]
        vs = [matvec(W[p + "attn_v"], KV * hd, C, h) for h in hs]
        new = []
        for t in range(T):
            att = []
            for h in range(H):
                g = h // (H // KV)
                q = qs[t][h * hd:(h + 1) * hd]
                sc = [sum(q[i] * ks[s][g * hd + i] for i in range(hd)) / math.sqrt(hd)
                      for s in range(t + 1)]
                m = max(sc)
                e = [math.exp(v - m) for v in sc]
                z = sum(e)
                att += [sum(e[s] / z * vs[s][g * hd + i] for s in range(t + 1)) for i in range(hd)]
            o = matvec(W[p + "attn_output"], C, H * hd, att)
            new.append([a + b for a, b in zip(xs[t], o)])
        xs = new
        new = []
        for x in xs:
            h = rmsnorm(x, W[p + "ffn_norm"], eps)
            gate = matvec(W[p + "ffn_gate"], Fd, C, h)
            up = matvec(W[p + "ffn_up"], Fd, C, h)
            act = [gv / (1.0 + math.exp(-gv)) * u for gv, u in zip(gate, up)]
            d = matvec(W[p + "ffn_down"], C, Fd, act)
            new.append([a + b for a, b in zip(x, d)])
        xs = new
    head = W["token_embd"] if tied else W["output"]
    return [matvec(head, V, C, rmsnorm(x, W["output_norm"], eps)) for x in xs]


def loss_of(W, cfg, tokens, with_logits=False):
    B, T = cfg[8], cfg[9]
    total, all_logits = 0.0, []
    for b in range(B):
        row = tokens[b * (T + 1):(b + 1) * (T + 1)]
        logits = forward_seq(W, cfg, row[:T])
        for t in range(T):
            m = max(logits[t])
            lse = m + math.log(sum(math.exp(v - m) for v in logits[t]))
            total += lse - logits[t][row[t + 1]]
        all_logits += [v for r in logits for v in r]
    return (total / (B * T), all_logits) if with_logits else total / (B * T)


def weight_shapes(cfg):
    V, C, L, H, KV, Fd, _, tied = cfg[:8]
    hd = C // H
    s = [("token_embd", [V, C])]
    for l in range(L):
        p = f"blk.{l}."
        s += [(p + "attn_norm", [C]), (p + "attn_q", [H * hd, C]), (p + "attn_k", [KV * hd, C]),
              (p + "attn_v", [KV * hd, C]), (p + "attn_output", [C, H * hd]), (p + "ffn_norm", [C]),
              (p + "ffn_gate", [Fd, C]), (p + "ffn_up", [Fd, C]), (p + "ffn_down", [C, Fd])]
    s.append(("output_norm", [C]))
    if not tied:
        s.append(("output", [V, C]))
    return s


def lr_at(o, s):
    lr, min_lr, warmup, total = o[0], o[1], int(o[2]), int(o[3])
    if s < warmup:
        return lr * (s + 1) / warmup
    p = (s - warmup) / max(1, total - warmup)
    return min_lr + 0.5 * (lr - min_lr) * (1.0 + math.cos(math.pi * p))


def main():
    ap = argparse.ArgumentParser(description="list and check a .qfx fixture")
    ap.add_argument("path")
    ap.add_argument("--list", action="store_true", help="print every record")
    ap.add_argument("--fd", type=int, default=0, metavar="N",
                    help="check N gradient entries by central finite differences (slow)")
    args = ap.parse_args()
    recs = read_qfx(args.path)
    ok = True

    def check(cond, msg):
        nonlocal ok
        print(("ok    " if cond else "FAIL  ") + msg)
        ok = ok and cond

    if args.list:
        for name, (dtype, dims, data) in recs.items():
            print(f"{name:28s} {'f32' if dtype == 0 else 'i32'} {dims} first {data[:3]}")

    cfg = recs["config"][2] + recs["config_f"][2]
    V, C, L, H, KV, Fd, maxT, tied, B, T = cfg[:10]
    S = int(recs["optim"][2][3])
    want = {"config": (1, [10]), "config_f": (0, [2]), "optim": (0, [9]), "tokens": (1, [B, T + 1]),
            "logits": (0, [B, T, V]), "loss": (0, [1]), "adamw_tokens": (1, [S, B, T + 1]),
            "adamw_losses": (0, [S]), "adamw_lrs": (0, [S]), "adamw_gnorms": (0, [S])}
    for n, shape in weight_shapes(cfg):
        for prefix in ("", "grad.", "final."):
            want[prefix + n] = (0, shape)
    missing = [n for n in want if n not in recs]
    extra = [n for n in recs if n not in want]
    bad = [n for n in want if n in recs and (recs[n][0], recs[n][1]) != want[n]]
    check(not missing and not extra and not bad,
          f"{len(recs)} records as the config implies (missing {missing}, extra {extra}, "
          f"wrong dtype/shape {bad})")
    check(T <= maxT and C % H == 0 and H % KV == 0 and (C // H) % 2 == 0, "config consistent")
    toks = recs["tokens"][2] + recs["adamw_tokens"][2]
    check(all(0 <= t < V for t in toks), "tokens in [0, vocab)")
    if not ok:
        return 1

    W = {n: recs[n][2] for n, _ in weight_shapes(cfg)}
    loss, logits = loss_of(W, cfg, recs["tokens"][2], with_logits=True)
    ref = recs["logits"][2]
    err = math.sqrt(sum((a - b) ** 2 for a, b in zip(logits, ref)) / sum(b * b for b in ref))
    check(err < 1e-6, f"logits recomputed naively: relative error {err:.2e}")
    lref = recs["loss"][2][0]
    check(abs(loss - lref) <= 1e-6 * abs(lref), f"loss {loss:.8f} vs stored {lref:.8f}")

    o = recs["optim"][2]
    lrs = recs["adamw_lrs"][2]
    worst = max(abs(lr_at(o, s) - lrs[s]) / lrs[s] for s in range(S))
    check(worst < 1e-6, f"adamw_lrs follow warmup + cosine (worst relative error {worst:.2e})")
    losses, gn = recs["adamw_losses"][2], recs["adamw_gnorms"][2]
    print(f"      adamw losses {' '.join(f'{x:.4f}' for x in losses)}")
    print(f"      grad norms   {' '.join(f'{x:.3f}' for x in gn)} (clip at {o[8]:g})")
    moved = max(abs(a - b) for a, b in zip(recs["final.token_embd"][2], W["token_embd"]))
    check(moved > 1e-3, f"AdamW moved the weights (token_embd max change {moved:.3g})")

    # Finite differences on the largest-gradient entry of a few tensors (float64, h = 1e-4).
    names = [n for n, _ in weight_shapes(cfg)]
    picks = [names[i * len(names) // args.fd] for i in range(args.fd)]
    for n in picks:
        g = recs["grad." + n][2]
        i = max(range(len(g)), key=lambda j: abs(g[j]))
        h = 1e-4
        w0 = W[n][i]
        W[n][i] = w0 + h
        lp = loss_of(W, cfg, recs["tokens"][2])
        W[n][i] = w0 - h
        lm = loss_of(W, cfg, recs["tokens"][2])
        W[n][i] = w0
        fd = (lp - lm) / (2 * h)
        check(abs(fd - g[i]) <= 1e-4 * abs(g[i]) + 1e-8,
              f"d loss / d {n}[{i}]: finite difference {fd:.8g} vs stored {g[i]:.8g}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
