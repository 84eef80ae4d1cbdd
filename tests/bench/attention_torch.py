#!/usr/bin/env python3
"""Dense causal attention forward in PyTorch, the peer of `attnscope-cli bench attention`'s
dense rows: F.scaled_dot_product_attention(q, k, v, is_causal=True) on random float32
q, k, v of shape (1, H, N, d), best wall time of repeated runs, with the thread count set.

Prints one JSON object per length on lines starting with BENCH_ATTN (for
tests/bench/run_attention_bench.sh) after a readable table.
"""
import argparse
import json
import time

import torch
import torch.nn.functional as F


def best_seconds(fn, budget):
    fn()  # warm-up (and the kernel choice)
    best, total, runs = None, 0.0, 0
    while runs < 3 or (total < budget and runs < 50):
        t0 = time.perf_counter()
        fn()
        s = time.perf_counter() - t0
        best = s if best is None else min(best, s)
        total += s
        runs += 1
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--lengths", default="1024,4096,16384")
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--head-dim", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--budget", type=float, default=2.0, help="seconds of timed runs per length")
    ap.add_argument("--manual", action="store_true",
                    help="also time the hand-written softmax(q k^T + mask) v")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    H, d = a.heads, a.head_dim
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"{'kind':<16} {'N':>7} {'ms':>11} {'GFLOP/s':>10}")
    with torch.inference_mode():
        for n in (int(x) for x in a.lengths.split(",")):
            q, k, v = (torch.randn(1, H, n, d) for _ in range(3))
            # 4 d flops per causal pair (j <= i): the work of the causal forward, either engine.
            flops = 4.0 * d * H * n * (n + 1) / 2
            kinds = [("torch-sdpa", lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True))]
            if a.manual:
                mask = torch.ones(n, n, dtype=torch.bool).triu(1)

                def manual():
                    s = (q @ k.transpose(-1, -2)) * (d ** -0.5)
                    s.masked_fill_(mask, float("-inf"))
                    return torch.softmax(s, dim=-1) @ v

                kinds.append(("torch-manual", manual))
            for name, fn in kinds:
                s = best_seconds(fn, a.budget)
                print(f"{name:<16} {n:>7} {s * 1e3:>11.3f} {flops / s / 1e9:>10.2f}")
                print("BENCH_ATTN " + json.dumps({"kind": name, "n": n, "ms": s * 1e3,
                                                  "gflops": flops / s / 1e9}))


if __name__ == "__main__":
    main()
