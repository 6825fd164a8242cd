#!/usr/bin/env python3
"""PyTorch's CPU run of the layer bench_fast_weight times, for a same-run peer.

One In-Place TTT layer's MLP over 16 chunks of C tokens, as SPEC.md section 3
computes it: gate/up (x Wgu^T), SwiGLU, the chunk's causal depthwise conv of
t inside the chunk, V = tc P, apply O = h W^T with W before the chunk's own
update, then W += eta V^T h. fp32, --threads threads (2 by default, as our
benchmarks run), shapes d 1024, f 3072 (Qwen3-0.6B) unless --shape 4b.
Prints tokens/s per chunk size, the median of --reps sequences after a
warm-up (the statistic bench_fast_weight reports for its own sequences);
run it interleaved with bench/bench_fast_weight (RESULTS.md says how).

    python3 bench/torch_fast_weight.py [--chunks 512,1024] [--reps 2] [--shape 0.6b|4b]

Needs torch (pip); not a build or test dependency.
"""
import argparse
import statistics
import sys
import time


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", default="512,1024")
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sequence", type=int, default=16)
    parser.add_argument("--shape", default="0.6b", choices=["0.6b", "4b"])
    args = parser.parse_args()
    try:
        import torch
        import torch.nn.functional as F
    except ImportError as error:
        print(f"torch_fast_weight: skipped: {error} (pip install torch)")
        return 0
    torch.set_num_threads(args.threads)
    d, f = (1024, 3072) if args.shape == "0.6b" else (2560, 9728)
    generator = torch.Generator().manual_seed(0)

    def uniform(*shape, scale=1.0):
        return (torch.rand(*shape, generator=generator) * 2 - 1) * scale

    gate_up = uniform(2 * f, d, scale=1.7 / d ** 0.5)
    conv = uniform(d, 1, 5, scale=0.3)
    projection = uniform(d, d, scale=1.7 / d ** 0.5)
    print(f"torch {torch.__version__}, {args.threads} threads, d {d}, f {f}, {args.sequence} chunks per sequence")
    print(f"{'C':>6} {'ms/chunk':>10} {'tokens/s':>10}")
    for C in [int(c) for c in args.chunks.split(",")]:
        x = uniform(2, C, d)
        eta = 0.01 / C
        seconds_per_sequence = []
        with torch.no_grad():
            for rep in range(args.reps + 1):  # the first is the warm-up
                W = uniform(d, f, scale=1.7 / f ** 0.5)
                start = time.perf_counter()
                for chunk in range(args.sequence):
                    xc = x[chunk % 2]
                    gu = F.linear(xc, gate_up)
                    h = F.silu(gu[:, :f]) * gu[:, f:]
                    out = F.linear(h, W)  # apply: W before this chunk's update
                    tc = F.conv1d(xc.T.unsqueeze(0), conv, padding=2, groups=d)[0].T
                    V = tc @ projection
                    W.addmm_(V.T, h, alpha=eta)
                seconds = time.perf_counter() - start
                if rep > 0:
                    seconds_per_sequence.append(seconds)
        del out
        middle = statistics.median(seconds_per_sequence)
        print(f"{C:>6} {1e3 * middle / args.sequence:>10.1f} {C * args.sequence / middle:>10.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
