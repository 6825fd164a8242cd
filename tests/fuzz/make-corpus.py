#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into tests/fuzz/corpus/<target>/.

A few small valid inputs per target, from the committed test data and the
fixture models (`make tests/write-fixtures && tests/write-fixtures DIR`,
then `make-corpus.py --fixtures DIR`; without it the fixture-derived seeds
are left as they are). Python 3 standard library only.
"""
import argparse
import json
import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
CORPUS = os.path.join(HERE, "corpus")


def out(target, name, data):
    directory = os.path.join(CORPUS, target)
    os.makedirs(directory, exist_ok=True)
    mode = "wb" if isinstance(data, bytes) else "w"
    with open(os.path.join(directory, name), mode) as file:
        file.write(data)


def copy(target, name, source):
    with open(source, "rb") as file:
        out(target, name, file.read())


def safetensors(tensors, metadata=None, pad=True):
    """tensors: list of (name, dtype, shape, raw bytes), laid out back to back."""
    header, blobs, offset = {}, [], 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        text += b" " * ((8 - (8 + len(text)) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def f32(*values):
    return struct.pack("<%df" % len(values), *values)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fixtures", help="directory written by tests/write-fixtures")
    args = parser.parse_args()

    out("fuzz_safetensors", "f32-two.safetensors",
        safetensors([("a", "F32", [2, 3], f32(1, 2, 3, 4, 5, 6)), ("b", "F32", [2], f32(-1, 0.5))],
                    {"format": "pt"}))
    out("fuzz_safetensors", "half.safetensors",
        safetensors([("h", "F16", [3], struct.pack("<3H", 0x3C00, 0x0001, 0x7C00)),
                     ("g", "BF16", [2], struct.pack("<2H", 0x3F80, 0xFF80))], pad=False))
    out("fuzz_safetensors", "scalar-empty.safetensors",
        safetensors([("scalar", "F32", [], f32(4.5)), ("empty", "F32", [0, 7], b"")]))

    copy("fuzz_config", "stories260K.json", os.path.join(TESTS, "models", "stories260K", "config.json"))
    if args.fixtures:
        for name in sorted(os.listdir(args.fixtures)):
            copy("fuzz_config", name + ".json", os.path.join(args.fixtures, name, "config.json"))
        copy("fuzz_index", "qwen3-yarn.json",
             os.path.join(args.fixtures, "qwen3-yarn", "model.safetensors.index.json"))

    # fuzz_index writes these two shards beside the index it is given.
    shards = {"model.embed_tokens.weight": "model-00001-of-00002.safetensors",
              "model.norm.weight": "model-00002-of-00002.safetensors",
              "lm_head.weight": "model-00002-of-00002.safetensors"}
    out("fuzz_index", "two-shards.json", json.dumps({"metadata": {"total_size": 32}, "weight_map": shards}))
    out("fuzz_index", "one-shard.json",
        json.dumps({"weight_map": {"model.embed_tokens.weight": "model-00001-of-00002.safetensors"}}))
    out("fuzz_index", "outside.json", json.dumps({"weight_map": {"model.norm.weight": "../x.safetensors"}}))

    tokenizers = os.path.join(TESTS, "tokenizer")
    for name in ("qwen-like", "llama3-like"):
        copy("fuzz_tokenizer_json", name + ".json", os.path.join(tokenizers, name, "tokenizer.json"))
    small = {"version": "1.0", "normalizer": None,
             "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
                 {"type": "Split", "pattern": {"String": " "}, "behavior": "Isolated", "invert": False},
                 {"type": "ByteLevel", "add_prefix_space": False, "use_regex": False}]},
             "decoder": {"type": "ByteLevel"},
             "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "\u0120": 2, "\u0120a": 3, "ab": 4},
                       "merges": ["\u0120 a", "a b"]}}
    out("fuzz_tokenizer_json", "split-literal.json", json.dumps(small))
    small["pre_tokenizer"] = {"type": "ByteLevel", "add_prefix_space": True}
    small["added_tokens"] = [{"id": 5, "content": "<|x|>", "special": True, "lstrip": True, "rstrip": False,
                              "normalized": False, "single_word": False}]
    out("fuzz_tokenizer_json", "added-lstrip.json", json.dumps(small))

    copy("fuzz_llama2c", "tok512.bin", os.path.join(TESTS, "models", "stories260K", "tok512.bin"))
    pieces = [(0.0, b"<unk>"), (0.0, b"\n<s>\n"), (0.0, b"\n</s>\n")]
    pieces += [(0.0, b"<0x%02X>" % byte) for byte in range(256)]
    pieces += [(-1.0, b" "), (-2.0, b"a"), (-3.0, b" a"), (-4.0, b"ab")]
    blob = struct.pack("<i", 7) + b"".join(struct.pack("<fi", score, len(piece)) + piece for score, piece in pieces)
    out("fuzz_llama2c", "small.bin", blob)

    entry = {"platform": "Portable Computing Language", "device": "cpu-fuzz", "driver": "1.0",
             "parameters": {"RMSNORM_WGS": 32, "ATTENTION_BLOCK_Q": 16, "ATTENTION_BLOCK_K": 64,
                            "ROPE_WGS": 64, "ELEMENTWISE_WGS": 64, "VECTOR_WIDTH": 8, "TTT_CONV_ROWS": 8}}
    other = dict(entry, device="some other device", parameters={"RMSNORM_WGS": 64})
    out("fuzz_tuning", "match.json", json.dumps({"format": "clttt-tuning", "version": 1, "entries": [other, entry]}))
    out("fuzz_tuning", "partial.json",
        json.dumps({"format": "clttt-tuning", "version": 1,
                    "entries": [dict(entry, parameters={"GEMV_ROW_PER_ITEM": 0, "GEMV_WGS": 64})]}))
    out("fuzz_tuning", "empty.json", json.dumps({"format": "clttt-tuning", "version": 1, "entries": []}))


if __name__ == "__main__":
    main()
