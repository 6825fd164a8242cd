#!/usr/bin/env python3
"""PyTorch's CPU GEMMs at bench_gemm's shapes, for comparison (run separately).

out = x @ W.T (torch.nn.functional.linear) for rows x n x k with fp32
weights, and the TTT update W += eta * V.T @ h (torch.addmm) at d 1024,
f 3072, C 512 and 1024. Reports the best and median of --reps calls after a
warm-up, in GFLOP/s (2 m n k / time). --bf16 also times bf16 x bf16 linear
(PyTorch's own bf16 path, with bf16 activations too: not the same product as
our fp32-activation kernel, shown only as a bar).

    python3 bench/torch_gemm.py [--quick] [--reps N] [--threads N] [--bf16] [--shape RxNxK ...]

--shape (repeatable) times those linear products instead of the lists
below, and no update (bench/bench_prefill runs it on a prefill's products).
"""
import argparse
import statistics
import time

import torch

FULL = [(512, 3072, 1024), (1024, 3072, 1024), (512, 2048, 1024), (1024, 2048, 1024),
        (512, 6144, 1024), (1024, 6144, 1024), (512, 9728, 2560)]
QUICK = [(512, 3072, 1024), (1024, 6144, 1024), (512, 9728, 2560)]


def timed(call, reps):
    call()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--reps", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--shape", action="append", default=[], help="rows x n x k of one linear product")
    args = parser.parse_args()
    try:
        shapes = [tuple(int(x) for x in shape.split("x")) for shape in args.shape]
    except ValueError:
        parser.error("--shape expects RxNxK, three positive integers")
    if any(len(shape) != 3 or min(shape) < 1 for shape in shapes):
        parser.error("--shape expects RxNxK, three positive integers")
    if args.threads:
        torch.set_num_threads(args.threads)
    reps = args.reps or (3 if args.quick else 5)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {reps} calls each")
    print("| m x n x k | kernel | best ms | GFLOP/s best (median) |")
    print("| --- | --- | --- | --- |")
    for m, n, k in shapes or (QUICK if args.quick else FULL):
        x = torch.rand(m, k) * 2 - 1
        w = (torch.rand(n, k) * 2 - 1) * (1.7 / k ** 0.5)
        kinds = [("torch fp32 linear", x, w)]
        if args.bf16:
            kinds.append(("torch bf16 linear", x.bfloat16(), w.bfloat16()))
        for name, a, b in kinds:
            best, med = timed(lambda: torch.nn.functional.linear(a, b), reps)
            flops = 2.0 * m * n * k
            print(f"| {m}x{n}x{k} | {name} | {best * 1e3:.2f} | {flops / best * 1e-9:.1f} ({flops / med * 1e-9:.1f}) |")
    d, f = 1024, 3072
    for c in [] if shapes else [512] if args.quick else [512, 1024]:
        v = torch.rand(c, d) * 2 - 1
        h = torch.rand(c, f) * 2 - 1
        w = (torch.rand(d, f) * 2 - 1) * 0.03
        eta = 1e-3 / c
        best, med = timed(lambda: w.addmm_(v.t(), h, alpha=eta), reps)
        flops = 2.0 * d * f * c
        print(f"| {d}x{f}x{c} | torch update (addmm_, V^T h) | {best * 1e3:.2f} | "
              f"{flops / best * 1e-9:.1f} ({flops / med * 1e-9:.1f}) |")


if __name__ == "__main__":
    main()
