#!/usr/bin/env python3
# The PyTorch twin of attnscope's dense model (engine/models/common.cpp, transformer.cpp), for
# comparing training throughput: same parameters, same forward, AdamW, float32 on the CPU.
# Prints one line "BENCH_TRAIN {json}" with the steady-state tokens/s (median of timed steps).
"""Usage: train_torch.py --modality image:32x32x3 --layers 4 --dim 128 --heads 4 --batch 4
       [--steps 10] [--warmup-steps 2] [--threads 1] [--weights FILE] [--batch-file FILE]

With --weights (an attnscope model file) the configuration and the initial weights come from
the file, so both engines start from the same point; with --batch-file (k batches of B*N raw
bytes, as `attnscope-cli bench train --batch-out` writes them) step i trains on batch i. The
first loss (bits per position, before any update) must then equal attnscope's; later losses
agree as far as the two optimisers do (AdamW, betas 0.9/0.95, decay 0.01 on matrices, clip 1,
linear lr warm-up over 100 steps)."""

import argparse
import json
import math
import resource
import statistics
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

VOCAB = 256


def parse_modality(text):
    """(kind, seq_len, dims) from "image:WxHxC", "text:LENGTH" or "audio:RATE:SECONDS"."""
    kind, _, rest = text.partition(":")
    if kind == "image":
        w, h, c = (int(v) for v in rest.split("x"))
        return kind, w * h * c, (w, h, c)
    if kind == "text":
        return kind, int(rest), None
    if kind == "audio":
        rate, seconds = rest.split(":")
        return kind, int(round(int(rate) * float(seconds))), None
    sys.exit(f"train_torch.py: unknown modality '{text}'")


def read_model_file(path):
    """The config (dict) and F32 tensors of an attnscope safetensors file: an 8-byte
    little-endian header length, the JSON header, then the raw data (engine/io/FORMAT.md)."""
    with open(path, "rb") as f:
        blob = f.read()
    (hlen,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + hlen])
    meta = header.pop("__metadata__")
    cfg = json.loads(meta["attnscope.config"])
    data = blob[8 + hlen :]
    tensors = {}
    for name, info in header.items():
        if info["dtype"] != "F32":
            sys.exit(f"train_torch.py: {path}: tensor {name} is {info['dtype']}; need F32")
        lo, hi = info["data_offsets"]
        arr = np.frombuffer(data[lo:hi], dtype="<f4").reshape(info["shape"])
        tensors[name] = torch.from_numpy(arr.copy())
    return cfg, tensors


def param_shapes(c):
    """The dense family's tensors in attnscope's names and shapes (matrices are (in, out))."""
    D, F_, N = c["dim"], c["ff_dim"], c["seq_len"]
    if c["kind"] == "image":
        w, h, ch = c["image"]
        rows, cols = h, w
    else:
        cols = c["pos_width"]
        rows = (N + cols - 1) // cols
    s = {
        "embed.token": (VOCAB, D),
        "embed.bos": (D,),
        "embed.pos_row": (rows, D),
        "embed.pos_col": (cols, D),
    }
    if c["kind"] == "image":
        s["embed.pos_channel"] = (c["image"][2], D)
    s.update({"final_ln.weight": (D,), "final_ln.bias": (D,), "head.weight": (D, VOCAB),
              "head.bias": (VOCAB,)})
    for l in range(c["layers"]):
        p = f"blocks.{l}."
        s.update({p + "ln1.weight": (D,), p + "ln1.bias": (D,), p + "attn.wq": (D, D),
                  p + "attn.wk": (D, D), p + "attn.wv": (D, D), p + "attn.wo": (D, D),
                  p + "ln2.weight": (D,), p + "ln2.bias": (D,), p + "ff.w1": (D, F_),
                  p + "ff.b1": (F_,), p + "ff.w2": (F_, D), p + "ff.b2": (D,)})
    return s


class DenseModel(torch.nn.Module):
    """Pre-LN decoder: input p is BOS for p = 0 else token x[p-1], plus factorised positions;
    blocks x += Attn(LN1 x) Wo, x += FFN(LN2 x); final LN; head (D -> 256) with bias."""

    def __init__(self, c, weights=None, seed=0):
        super().__init__()
        self.c = c
        self.names = []
        gen = torch.Generator().manual_seed(seed)
        for name, shape in param_shapes(c).items():
            if weights is not None:
                t = weights[name]
                if tuple(t.shape) != shape:
                    sys.exit(f"train_torch.py: {name} has shape {tuple(t.shape)}, expected {shape}")
            elif name.endswith(("ln1.weight", "ln2.weight", "final_ln.weight")):
                t = torch.ones(shape)
            elif len(shape) == 1 and name != "embed.bos":
                t = torch.zeros(shape)
            else:
                t = torch.randn(shape, generator=gen) * 0.02
            self.register_parameter(name.replace(".", "__"), torch.nn.Parameter(t.clone()))
            self.names.append(name)
        N = c["seq_len"]
        p = torch.arange(N)
        # Position indices of every p: image rows/cols/channels, else p / w and p % w.
        if c["kind"] == "image":
            W, _, C = c["image"]
            self.register_buffer("pos_chan", p % C, persistent=False)
            self.register_buffer("pos_col_i", (p // C) % W, persistent=False)
            self.register_buffer("pos_row_i", p // (C * W), persistent=False)
        else:
            self.register_buffer("pos_col_i", p % c["pos_width"], persistent=False)
            self.register_buffer("pos_row_i", p // c["pos_width"], persistent=False)
        # mask (N, N): True above the diagonal, the keys a query may not see.
        self.register_buffer("mask", torch.ones(N, N, dtype=torch.bool).triu(1), persistent=False)

    # Set by main: F.scaled_dot_product_attention, or the hand-written masked softmax.
    sdpa = False

    def w(self, name):
        return getattr(self, name.replace(".", "__"))

    def forward(self, x):
        # x is (B, N) int64; returns logits (B, N, 256).
        c = self.c
        B, N = x.shape
        D, H = c["dim"], c["heads"]
        d = D // H
        tok = F.embedding(x[:, :-1], self.w("embed.token"))  # (B, N-1, D)
        bos = self.w("embed.bos").expand(B, 1, D)
        pos = self.w("embed.pos_row")[self.pos_row_i] + self.w("embed.pos_col")[self.pos_col_i]
        if c["kind"] == "image":
            pos = pos + self.w("embed.pos_channel")[self.pos_chan]
        h = torch.cat([bos, tok], dim=1) + pos  # (B, N, D)
        scale = 1.0 / math.sqrt(d)
        for l in range(c["layers"]):
            p = f"blocks.{l}."
            a = F.layer_norm(h, (D,), self.w(p + "ln1.weight"), self.w(p + "ln1.bias"), 1e-5)
            # q, k, v are (B, H, N, d)
            q = (a @ self.w(p + "attn.wq")).view(B, N, H, d).transpose(1, 2)
            k = (a @ self.w(p + "attn.wk")).view(B, N, H, d).transpose(1, 2)
            v = (a @ self.w(p + "attn.wv")).view(B, N, H, d).transpose(1, 2)
            if self.sdpa:  # torch >= 2.0: the fused causal kernel (flash on the CPU)
                o = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, H, N, d)
            else:
                s = (q * scale) @ k.transpose(-1, -2)  # (B, H, N, N)
                s.masked_fill_(self.mask, float("-inf"))
                o = torch.softmax(s, dim=-1) @ v  # (B, H, N, d)
            o = o.transpose(1, 2).reshape(B, N, D)
            h = h + o @ self.w(p + "attn.wo")
            a = F.layer_norm(h, (D,), self.w(p + "ln2.weight"), self.w(p + "ln2.bias"), 1e-5)
            u = F.gelu(a @ self.w(p + "ff.w1") + self.w(p + "ff.b1"), approximate="tanh")
            h = h + u @ self.w(p + "ff.w2") + self.w(p + "ff.b2")
        h = F.layer_norm(h, (D,), self.w("final_ln.weight"), self.w("final_ln.bias"), 1e-5)
        return h @ self.w("head.weight") + self.w("head.bias")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--modality", default="image:32x32x3")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--ff-dim", type=int, default=0, help="0 = 4 D")
    ap.add_argument("--pos-width", type=int, default=0, help="text/audio; 0 = ceil(sqrt N)")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=10, help="timed steps")
    ap.add_argument("--warmup-steps", type=int, default=2, help="untimed steps before them")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--lr-warmup", type=int, default=100, help="linear lr warm-up steps")
    ap.add_argument("--weights", help="attnscope model file: config and initial weights")
    ap.add_argument("--batch-file", help="B*N raw bytes: the first step's batch")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--attention", choices=("sdpa", "manual"), default=None,
                    help="sdpa (F.scaled_dot_product_attention, torch >= 2.0; the default where\n"
                         "it exists) or manual (softmax of the masked score matrix)")
    args = ap.parse_args()
    has_sdpa = hasattr(F, "scaled_dot_product_attention")
    if args.attention == "sdpa" and not has_sdpa:
        sys.exit(f"train_torch.py: torch {torch.__version__} has no scaled_dot_product_attention")
    DenseModel.sdpa = has_sdpa if args.attention is None else args.attention == "sdpa"

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    weights = None
    if args.weights:
        fc, weights = read_model_file(args.weights)
        if fc["family"] != "dense":
            sys.exit(f"train_torch.py: {args.weights} is a {fc['family']} model; only dense")
        args.modality, args.layers, args.dim = fc["modality"], fc["layers"], fc["dim"]
        args.heads, args.ff_dim, args.pos_width = fc["heads"], fc["ff_dim"], fc["pos_width"]
    kind, N, image = parse_modality(args.modality)
    c = {"kind": kind, "seq_len": N, "image": image, "layers": args.layers, "dim": args.dim,
         "heads": args.heads, "ff_dim": args.ff_dim or 4 * args.dim,
         "pos_width": args.pos_width or math.isqrt(N - 1) + 1}
    model = DenseModel(c, weights, args.seed)

    # AdamW as the attnscope trainer sets it: decay on the matrices only.
    matrices = ("attn.wq", "attn.wk", "attn.wv", "attn.wo", "ff.w1", "ff.w2", "head.weight")
    decay = [model.w(n) for n in model.names if n.endswith(matrices)]
    other = [model.w(n) for n in model.names if not n.endswith(matrices)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                             {"params": other, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), eps=1e-8)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / max(1, args.lr_warmup)))
    params = list(model.parameters())

    B = args.batch
    given = None  # (K, B, N): the batches of --batch-file, used in turn
    if args.batch_file:
        raw = open(args.batch_file, "rb").read()
        if not raw or len(raw) % (B * N):
            sys.exit(f"train_torch.py: {args.batch_file} has {len(raw)} bytes; need k*{B}*{N}")
        given = torch.frombuffer(bytearray(raw), dtype=torch.uint8).view(-1, B, N).long()

    # Wall and CPU seconds (all threads) of each timed step: on a shared machine the wall
    # clock also counts the time other processes held the cores.
    times, cpu_times, losses = [], [], []
    total = args.warmup_steps + args.steps
    for step in range(total):
        x = given[step % len(given)] if given is not None else torch.randint(0, VOCAB, (B, N))
        t0, c0 = time.perf_counter(), time.process_time()
        opt.zero_grad(set_to_none=True)
        logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, VOCAB), x.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        losses.append(loss.item() / math.log(2))
        if step >= args.warmup_steps:
            times.append(dt)
            cpu_times.append(dc)
        print(f"step {step + 1}/{total}: loss {losses[-1]:.4f} bits, {dt * 1e3:.0f} ms",
              file=sys.stderr, flush=True)

    med = statistics.median(times)
    rec = {
        "impl": "torch " + torch.__version__, "attention": "sdpa" if DenseModel.sdpa else "manual", "threads": args.threads, "modality": args.modality,
        "layers": args.layers, "dim": args.dim, "heads": args.heads, "batch": B, "seq_len": N,
        "steps": len(times), "ms_per_step": med * 1e3,
        "cpu_ms_per_step": statistics.median(cpu_times) * 1e3, "tokens_per_s": B * N / med,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "first_loss_bits": losses[0], "losses_bits": losses[:3],
    }
    print("BENCH_TRAIN " + json.dumps(rec), flush=True)


if __name__ == "__main__":
    main()
