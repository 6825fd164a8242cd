#!/usr/bin/env python3
"""Prefill and decode: clttt against llama.cpp's llama-bench in the same run.

Both read the same model: an HF directory for clttt (bench/write_checkpoint.py
writes the issue's plain 8-layer Qwen3) and its GGUF conversions for
llama.cpp (its convert_hf_to_gguf.py --outtype f32 / f16). llama-bench's
pp<n> is a prefill of n tokens whose logits are those of the last token, its
tg<m> m decode steps from an empty context; clttt's bench/bench_weights
measures the same two things (--prefill n --decode 1, and --prefill 0
--decode m, logits of the last token), each warm as llama-bench's tests are
(llama-bench times a run after an unmeasured one; bench_weights runs twice
and the faster counts). Rounds alternate (llama.cpp, clttt,
llama.cpp, ...) and the fastest of each side counts: a shared machine drifts
by more than the difference measured.

    python3 bench/peer_llama_cpp.py --llama-bench PATH --bench-weights BUILD/bench/bench_weights \\
        --model-f32 DIR --gguf-f32 FILE [--model-half DIR --gguf-f16 FILE] [--repeats 2]

With --model-half (a bf16 checkpoint) and --gguf-f16, decode also runs with
16-bit weights: clttt bf16 and f16 against llama.cpp f16. With --depths as
well, that decode also runs after a context of each depth (llama-bench -d;
bench_weights --prefill depth), where attention over the KV cache takes a
growing share of each step; llama.cpp runs with its flash attention off and
on and its faster one counts. llama.cpp is an optional peer, never a build
or test dependency.
"""

import argparse
import json
import os
import subprocess
import sys


def llama_bench(path, gguf, threads, prompts, generate):
    """{("pp", n) or ("tg", m): tokens/s} from one llama-bench run of one repetition."""
    command = [path, "-m", gguf, "-t", str(threads), "-r", "1", "-o", "json", "-n", str(generate)]
    if prompts:
        command += ["-p", ",".join(str(n) for n in prompts)]
    else:
        command += ["-p", "0"]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    rates = {}
    for test in json.loads(result.stdout):
        if test["n_gen"] == 0 and test["n_prompt"] > 0:
            rates[("pp", test["n_prompt"])] = test["avg_ts"]
        elif test["n_prompt"] == 0 and test["n_gen"] > 0:
            rates[("tg", test["n_gen"])] = test["avg_ts"]
    return rates


def llama_bench_depths(path, gguf, threads, depths, generate):
    """{("tg", m, depth): (tokens/s, flash attention on)} from one llama-bench run of one repetition,
    the faster of its flash attention off and on at each depth."""
    command = [path, "-m", gguf, "-t", str(threads), "-r", "1", "-o", "json", "-p", "0", "-n", str(generate),
               "-d", ",".join(str(d) for d in depths), "-fa", "0,1"]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    rates = {}
    for test in json.loads(result.stdout):
        key = ("tg", test["n_gen"], test["n_depth"])
        if test["n_prompt"] == 0 and test["n_gen"] > 0 and test["avg_ts"] > rates.get(key, (0.0, 0))[0]:
            rates[key] = (test["avg_ts"], int(bool(test.get("flash_attn"))))
    return rates


def bench_weights(path, model, types, prefill, decode):
    """{type: (prefill tokens/s, decode tokens/s)} from one bench_weights round."""
    # llama-bench runs each test once unmeasured before it times it (its
    # warm-up); two repeats, the faster counting, give clttt the same: the
    # first 512-token prefill of a process ran at 0.7x the rate of the next
    # (2-core AVX2 EPYC, PoCL 3.1; bench/RESULTS.md section 20).
    command = [path, "--model", model, "--types", ",".join(types), "--repeats", "2", "--prefill", str(prefill),
               "--decode", str(decode)]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    rates = {}
    for line in result.stdout.splitlines():
        fields = line.split()
        if fields and fields[0] in types and len(fields) >= 4:
            rates[fields[0]] = (float(fields[2]), float(fields[3]))
    missing = [t for t in types if t not in rates]
    if missing:
        raise RuntimeError(f"bench_weights printed no row for {missing}:\n{result.stdout}")
    return rates


def keep_best(best, key, value):
    best[key] = max(best.get(key, 0.0), value)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--llama-bench", required=True, help="path of llama.cpp's llama-bench")
    parser.add_argument("--bench-weights", required=True, help="path of clttt's bench/bench_weights")
    parser.add_argument("--model-f32", required=True, help="HF directory of the fp32 model (clttt)")
    parser.add_argument("--gguf-f32", required=True, help="the same model as GGUF, f32 (llama.cpp)")
    parser.add_argument("--model-half", help="HF directory of the model in bf16 (clttt, bf16 and f16 weights)")
    parser.add_argument("--gguf-f16", help="the same model as GGUF, f16 (llama.cpp)")
    parser.add_argument("--lengths", default="512,1024,2048", help="prefill lengths (default 512,1024,2048)")
    parser.add_argument("--decode", type=int, default=128, help="decode steps (default 128, as tg128)")
    parser.add_argument("--depths", default="",
                        help="with --model-half: also decode after contexts of these lengths (say 1024,4096)")
    parser.add_argument("--repeats", type=int, default=2, help="rounds of each side (default 2)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    for path in (args.llama_bench, args.bench_weights):
        if not os.access(path, os.X_OK):
            print(f"peer_llama_cpp: skipped: {path} is not an executable program")
            return 0
    if (args.model_half is None) != (args.gguf_f16 is None):
        parser.error("--model-half and --gguf-f16 go together")
    lengths = [int(x) for x in args.lengths.split(",") if x]
    depths = [int(x) for x in args.depths.split(",") if x]
    if depths and not args.model_half:
        parser.error("--depths needs --model-half and --gguf-f16")
    flash = {}
    peer, ours = {}, {}
    for round_index in range(args.repeats):
        print(f"round {round_index + 1} of {args.repeats}", file=sys.stderr, flush=True)
        for key, rate in llama_bench(args.llama_bench, args.gguf_f32, args.threads, lengths, args.decode).items():
            keep_best(peer, ("f32",) + key, rate)
        for n in lengths:
            prefill, _ = bench_weights(args.bench_weights, args.model_f32, ["f32"], n, 1)["f32"]
            keep_best(ours, ("f32", "pp", n), prefill)
        _, decode = bench_weights(args.bench_weights, args.model_f32, ["f32"], 0, args.decode)["f32"]
        keep_best(ours, ("f32", "tg", args.decode), decode)
        if args.model_half:
            for key, rate in llama_bench(args.llama_bench, args.gguf_f16, args.threads, [], args.decode).items():
                keep_best(peer, ("f16",) + key, rate)
            rates = bench_weights(args.bench_weights, args.model_half, ["bf16", "f16"], 0, args.decode)
            for weight_type, (_, decode) in rates.items():
                keep_best(ours, (weight_type, "tg", args.decode), decode)
        if depths:
            for (kind, count, depth), (rate, on) in llama_bench_depths(args.llama_bench, args.gguf_f16, args.threads,
                                                                        depths, args.decode).items():
                if rate > peer.get(("f16", kind, count, depth), 0.0):
                    flash[(count, depth)] = on
                keep_best(peer, ("f16", kind, count, depth), rate)
            for depth in depths:
                rates = bench_weights(args.bench_weights, args.model_half, ["bf16", "f16"], depth, args.decode)
                for weight_type, (_, decode) in rates.items():
                    keep_best(ours, (weight_type, "tg", args.decode, depth), decode)

    print(f"llama.cpp {args.llama_bench}, {args.threads} threads; clttt {args.bench_weights}; "
          f"fastest of {args.repeats} alternated rounds")
    print(f"{'test':>11}  {'clttt weights':>13}  {'clttt tok/s':>11}  {'llama.cpp weights':>17}  "
          f"{'llama.cpp tok/s':>15}  {'ratio':>6}")
    rows = [("f32", "pp", n, "f32") for n in lengths] + [("f32", "tg", args.decode, "f32")]
    if args.model_half:
        rows += [("bf16", "tg", args.decode, "f16"), ("f16", "tg", args.decode, "f16")]
    for ours_type, kind, count, peer_type in rows:
        mine, theirs = ours.get((ours_type, kind, count)), peer.get((peer_type, kind, count))
        if mine is None or theirs is None:
            continue
        print(f"{kind + str(count):>11}  {ours_type:>13}  {mine:11.1f}  {peer_type:>17}  {theirs:15.1f}  "
              f"{mine / theirs:5.2f}x")
    for depth in depths:
        on = flash.get((args.decode, depth), 0)
        for ours_type in ("bf16", "f16"):
            mine, theirs = ours.get((ours_type, "tg", args.decode, depth)), peer.get(("f16", "tg", args.decode, depth))
            if mine is None or theirs is None:
                continue
            test = f"tg{args.decode}@d{depth}"
            print(f"{test:>11}  {ours_type:>13}  {mine:11.1f}  {'f16, fa ' + ('on' if on else 'off'):>17}  "
                  f"{theirs:15.1f}  {mine / theirs:5.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
