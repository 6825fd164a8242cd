#!/usr/bin/env python3
"""Writes a randomly initialised Qwen3 checkpoint (HF transformers' own
initialisation) for the benchmarks that need a real directory on disk, such
as bench_weights --model (which reads it through mmap, as users' checkpoints
are read). Default: the plain 8-layer Qwen3 of the benchmarks (d 1024,
f 3072, 16 / 8 heads of 128, vocab 32000, untied), stored in bf16 as the
authors' export script writes checkpoints.

    python3 bench/write_checkpoint.py OUT_DIR [--dtype bfloat16|float16|float32]

Needs torch and transformers (pip); not a build or test dependency.
"""

import argparse
import os
import shutil
import sys


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--intermediate", type=int, default=3072)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--positions", type=int, default=8192)
    args = parser.parse_args()
    try:
        import torch
        from transformers import Qwen3Config, Qwen3ForCausalLM
    except ImportError as error:
        print(f"write_checkpoint: skipped: {error} (pip install torch transformers)")
        return 0
    config = Qwen3Config(hidden_size=args.hidden, intermediate_size=args.intermediate, num_hidden_layers=args.layers,
                         num_attention_heads=args.hidden // 64, num_key_value_heads=args.hidden // 128, head_dim=128,
                         vocab_size=args.vocab, max_position_embeddings=args.positions, tie_word_embeddings=False,
                         torch_dtype=args.dtype)
    torch.manual_seed(0)
    model = Qwen3ForCausalLM(config).to(getattr(torch, args.dtype)).eval()
    model.save_pretrained(args.out, safe_serialization=True)
    here = os.path.dirname(os.path.abspath(__file__))
    shutil.copy(os.path.join(here, "..", "tests", "models", "stories260K", "tok512.bin"),
                os.path.join(args.out, "tok512.bin"))
    print(f"write_checkpoint: {args.out}: {args.layers} layers, d {args.hidden}, {args.dtype}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
