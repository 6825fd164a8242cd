#!/usr/bin/env python3
"""End-to-end prefill: clttt against HF transformers in the same run.

The model is the issue's plain 8-layer Qwen3 (d 1024, f 3072, 16 / 8 heads
of 128, vocab 32000, fp32), with transformers' own random initialisation,
written once as a HuggingFace directory that both sides read. clttt runs
`clttt ppl --ttt off --json` and takes its "feed_seconds": the forward
passes with all rows of logits brought to the host, as transformers'
forward computes them, without ppl's scoring of those logits (which its
"seconds" includes). transformers runs under torch.no_grad() with sdpa
attention and 2 threads.

Runs alternate (clttt, transformers, clttt, ...) and the fastest of each
counts: a shared machine drifts by more than the difference measured.
Every run is a process of its own, transformers' too (this script started
again with --forward), and this process never loads the model. The script
used to keep transformers' model loaded in itself while clttt ran: on the
2-core VM of bench/RESULTS.md (section 15) that made clttt's 1024-token feed
take 2.4-3.9 s instead of 1.4-1.5, with most of the extra time in the
kernel clearing fresh pages for clttt's buffers.

Each transformers process times two forwards after loading the model:
"first", which like clttt's feed is the first pass of its process over
memory it has just allocated, and "warm", the second, whose allocator
reuses that memory. The ratio against "first" compares like with like;
the one against "warm" is the stricter.

    python3 bench/peer_prefill.py --clttt BUILD/clttt [--lengths 1024,2048] [--repeats 3]

Needs torch and transformers (pip); not a build or test dependency.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time


def write_model(directory, positions):
    """Child mode --write: transformers' randomly initialised model, saved."""
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM
    config = Qwen3Config(hidden_size=1024, intermediate_size=3072, num_hidden_layers=8,
                         num_attention_heads=16, num_key_value_heads=8, head_dim=128, vocab_size=32000,
                         max_position_embeddings=positions, tie_word_embeddings=False, torch_dtype="float32")
    torch.manual_seed(0)
    model = Qwen3ForCausalLM(config).float().eval()
    model.config._attn_implementation = "sdpa"
    model.save_pretrained(directory, safe_serialization=True)
    return 0


def time_forward(directory, n, threads):
    """Child mode --forward: two forwards of n tokens after loading the model;
    prints the seconds of each."""
    import torch
    from transformers import Qwen3ForCausalLM
    torch.set_num_threads(threads)
    model = Qwen3ForCausalLM.from_pretrained(directory, torch_dtype=torch.float32, attn_implementation="sdpa").eval()
    torch.manual_seed(n)
    ids = torch.randint(0, 512, (1, n))
    seconds = []
    with torch.no_grad():
        for _ in range(2):
            start = time.perf_counter()
            model(ids)
            seconds.append(time.perf_counter() - start)
    print(json.dumps({"first": seconds[0], "warm": seconds[1]}))
    return 0


def child(arguments):
    """Runs this script again in one of its child modes; returns its stdout."""
    result = subprocess.run([sys.executable, os.path.abspath(__file__)] + arguments, capture_output=True,
                            text=True)
    if result.returncode != 0:
        raise RuntimeError(f"peer_prefill {' '.join(arguments)} failed: {result.stderr.strip()}")
    return result.stdout


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clttt", help="path of the clttt program")
    parser.add_argument("--lengths", default="1024,2048")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--kv", default="f32", choices=["f32", "f16"])
    parser.add_argument("--write", metavar="DIR", help=argparse.SUPPRESS)
    parser.add_argument("--forward", nargs=2, metavar=("DIR", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    lengths = [int(x) for x in args.lengths.split(",")]
    if args.write:
        return write_model(args.write, max(lengths) + 64)
    if args.forward:
        return time_forward(args.forward[0], int(args.forward[1]), args.threads)
    if not args.clttt:
        parser.error("--clttt is required")
    try:
        import torch
        import transformers
    except ImportError as error:
        print(f"peer_prefill: skipped: {error} (pip install torch transformers)")
        return 0
    versions = f"transformers {transformers.__version__}, torch {torch.__version__}"
    here = os.path.dirname(os.path.abspath(__file__))
    tokenizer = os.path.join(here, "..", "tests", "models", "stories260K", "tok512.bin")
    with tempfile.TemporaryDirectory() as directory:
        child(["--write", directory, "--lengths", args.lengths])
        # Any text will do: ids from a tokenizer of 512 pieces are valid for
        # a vocabulary of 32000, and the cost does not depend on the ids.
        shutil.copy(tokenizer, os.path.join(directory, "tok512.bin"))
        text_path = os.path.join(directory, "text.txt")
        with open(text_path, "w") as text:
            text.write("Once upon a time, there was a little girl named Lily. She loved to play outside. " * 600)
        print(f"{versions}, {args.threads} threads; clttt {args.clttt} (KV {args.kv}); each run a process of its own")
        print(f"{'n':>6} {'clttt tok/s':>12} {'transformers first':>19} {'ratio':>7} {'transformers warm':>18} "
              f"{'ratio':>7}")
        for n in lengths:
            best_clttt = best_first = best_warm = float("inf")
            for _ in range(args.repeats):
                result = subprocess.run([args.clttt, "ppl", "-m", directory, "-f", text_path, "--ctx", str(n),
                                         "--ttt", "off", "--kv", args.kv, "--json"],
                                        capture_output=True, text=True, check=True)
                best_clttt = min(best_clttt, json.loads(result.stdout)["runs"][0]["feed_seconds"])
                forward = child(["--forward", directory, str(n), "--threads", str(args.threads)])
                times = json.loads(forward.strip().splitlines()[-1])
                best_first = min(best_first, times["first"])
                best_warm = min(best_warm, times["warm"])
            print(f"{n:>6} {n / best_clttt:>12.1f} {n / best_first:>19.1f} {best_first / best_clttt:>6.2f}x "
                  f"{n / best_warm:>18.1f} {best_warm / best_clttt:>6.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
