#!/usr/bin/env python3
"""End-to-end prefill: clttt against HF transformers in the same run.

The model is the issue's plain 8-layer Qwen3 (d 1024, f 3072, 16 / 8 heads
of 128, vocab 32000, fp32), with transformers' own random initialisation,
written once as a HuggingFace directory that both sides read. clttt runs
`clttt ppl --ttt off --json` and takes its "feed_seconds": the forward
passes with all rows of logits brought to the host, as transformers'
forward computes them, without ppl's scoring of those logits (which its
"seconds" includes). transformers runs one forward pass under
torch.no_grad() with sdpa attention and 2 threads.
Runs alternate (clttt, transformers, clttt, ...) and the fastest of each
counts: a shared machine drifts by more than the difference measured.

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


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clttt", required=True, help="path of the clttt program")
    parser.add_argument("--lengths", default="1024,2048")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--kv", default="f32", choices=["f32", "f16"])
    args = parser.parse_args()
    try:
        import torch
        import transformers
        from transformers import Qwen3Config, Qwen3ForCausalLM
    except ImportError as error:
        print(f"peer_prefill: skipped: {error} (pip install torch transformers)")
        return 0
    torch.set_num_threads(args.threads)
    lengths = [int(x) for x in args.lengths.split(",")]
    here = os.path.dirname(os.path.abspath(__file__))
    tokenizer = os.path.join(here, "..", "tests", "models", "stories260K", "tok512.bin")
    with tempfile.TemporaryDirectory() as directory:
        config = Qwen3Config(hidden_size=1024, intermediate_size=3072, num_hidden_layers=8,
                             num_attention_heads=16, num_key_value_heads=8, head_dim=128, vocab_size=32000,
                             max_position_embeddings=max(lengths) + 64, tie_word_embeddings=False,
                             torch_dtype="float32")
        torch.manual_seed(0)
        model = Qwen3ForCausalLM(config).float().eval()
        model.config._attn_implementation = "sdpa"
        model.save_pretrained(directory, safe_serialization=True)
        # Any text will do: ids from a tokenizer of 512 pieces are valid for
        # a vocabulary of 32000, and the cost does not depend on the ids.
        shutil.copy(tokenizer, os.path.join(directory, "tok512.bin"))
        text_path = os.path.join(directory, "text.txt")
        with open(text_path, "w") as text:
            text.write("Once upon a time, there was a little girl named Lily. She loved to play outside. " * 600)
        print(f"transformers {transformers.__version__}, torch {torch.__version__}, {args.threads} threads; "
              f"clttt {args.clttt} (KV {args.kv})")
        print(f"{'n':>6} {'clttt tok/s':>12} {'transformers tok/s':>19} {'ratio':>7}")
        for n in lengths:
            best_clttt = best_hf = float("inf")
            ids = torch.randint(0, 512, (1, n))
            for _ in range(args.repeats):
                result = subprocess.run([args.clttt, "ppl", "-m", directory, "-f", text_path, "--ctx", str(n),
                                         "--ttt", "off", "--kv", args.kv, "--json"],
                                        capture_output=True, text=True, check=True)
                seconds = json.loads(result.stdout)["runs"][0]["feed_seconds"]
                best_clttt = min(best_clttt, seconds)
                with torch.no_grad():
                    start = time.perf_counter()
                    model(ids)
                    best_hf = min(best_hf, time.perf_counter() - start)
            print(f"{n:>6} {n / best_clttt:>12.1f} {n / best_hf:>19.1f} {best_hf / best_clttt:>6.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
