#!/usr/bin/env python3
"""Golden logits for clttt's tests, from HuggingFace transformers.

The fixtures are the tiny seeded models of tests/fixture.c, written as real
HuggingFace directories by tests/write-fixtures. For every golden this script

  * loads the fixture with transformers (AutoModelForCausalLM, computed in
    float64), after checking that transformers read the configuration as
    written: rotary frequencies and attention scaling are compared with an
    independent computation of the default, llama3 and YaRN rules, and every
    weight is compared bit for bit with an independent re-implementation of
    the fixture generator (splitmix64 seeded by FNV-1a, rounded to the
    storage dtype by torch);
  * for TTT fixtures, replaces the forward of each TTT layer's MLP with an
    implementation of SPEC.md sections 3-4 written from the spec (chunk-wise
    apply-then-update of W_down with a per-chunk depthwise conv target and the
    ttt_proj projection); a second, streaming implementation (state W,
    pending h rows, pending t rows, fed through the KV cache token by token
    and in pieces of 7) must match the one-shot result within 1e-5 before
    anything is written;
  * checks that TTT moves the logits visibly after the first full chunk, and
    that a 256-token run stays finite and tame;
  * writes tests/golden/<fixture>-n<N>.bin (format in tests/golden.h, logits
    stored as float32) and tests/golden/index.txt.

Not run by CI; the outputs are committed. To regenerate:

    pip install torch transformers safetensors numpy
    # build the tree (./configure && make tests/write-fixtures), then:
    python3 tests/golden/generate.py --build-dir BUILD_DIR
    # or, with fixtures already written by `tests/write-fixtures DIR`:
    python3 tests/golden/generate.py --fixtures-dir DIR

`--check` recomputes everything and compares with the committed goldens
instead of writing them.
"""

import argparse
import json
import math
import os
import struct
import subprocess
import sys
import tempfile
import zlib

import numpy as np
import torch
import torch.nn.functional as F

import transformers
from safetensors import safe_open
from transformers import AutoModelForCausalLM

# (fixture, n): named "<fixture>-n<n>".
GOLDENS = [
    ("qwen3-tied", 96),
    ("qwen3-yarn", 96),
    ("llama-bias", 96),
    ("llama3-scaled", 96),
    ("ttt-proj-hidden", 96),   # 6 full chunks of 16
    ("ttt-noproj-embed", 90),  # C = 12 does not divide 90: last chunk partial
    ("ttt-big-chunk", 96),     # shorter than C = 128: the base model
    ("ttt-llama-embed", 20),   # shorter than one chunk
    ("ttt-llama-embed", 32),   # exactly one chunk
    ("ttt-llama-embed", 100),  # 3 full chunks and a partial one
]

STREAM_TOLERANCE = 1e-5
MAGIC = b"CLTTTGLD"
VERSION = 1
MASK64 = (1 << 64) - 1


def golden_name(fixture, n):
    return f"{fixture}-n{n}"


def golden_tokens(name, n, vocab):
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    return rng.integers(0, vocab, size=n).astype(np.int64)


# ----------------------------------------------------------------------
# Fixture generator, re-implemented (tests/fixture.c) to check the files.

def fnv1a(data, h=0xCBF29CE484222325):
    for byte in data:
        h ^= byte
        h = (h * 0x100000001B3) & MASK64
    return h


def fixture_fill(count, seed, name, scale, offset):
    state = fnv1a(name.encode(), fnv1a(seed.to_bytes(8, "little")))
    with np.errstate(over="ignore"):
        z = np.uint64(state) + np.arange(1, count + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    unit = (z >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)
    scale = float(np.float32(scale))
    offset = float(np.float32(offset))
    return (offset + scale * (2.0 * unit - 1.0)).astype(np.float32)


def expected_tensor(fixture, name, shape):
    seed = fnv1a(fixture.encode())
    count = int(np.prod(shape))
    if name == "model.embed_tokens.weight":
        scale, offset = 1.0, 0.0
    elif name.endswith("norm.weight"):
        scale, offset = 0.2, 1.0
    elif name.endswith(".bias"):
        scale, offset = 0.1, 0.0
    elif name.endswith("ttt_conv.weight"):
        scale, offset = 0.5, 0.0
    elif name.endswith("ttt_proj.weight"):
        scale, offset = 0.5 / math.sqrt(shape[0]), 0.0
    else:
        scale, offset = 1.5 / math.sqrt(shape[1]), 0.0
    values = fixture_fill(count, seed, name, scale, offset).reshape(shape)
    if name.endswith("ttt_proj.weight"):
        values[np.arange(shape[0]), np.arange(shape[0])] += np.float32(0.5)
    return torch.from_numpy(values)


def read_checkpoint(directory):
    """All tensors of the fixture, as stored, by name."""
    index = os.path.join(directory, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            weight_map = json.load(f)["weight_map"]
        files = sorted(set(weight_map.values()))
    else:
        files = ["model.safetensors"]
    tensors = {}
    for file in files:
        with safe_open(os.path.join(directory, file), framework="pt") as f:
            metadata = f.metadata()
            assert metadata and metadata.get("format") == "pt", f"{file}: metadata {metadata}"
            for key in f.keys():
                tensors[key] = f.get_tensor(key)
    if os.path.exists(index):
        assert set(tensors) == set(weight_map), "index.json and shards disagree"
        total = sum(t.numel() * t.element_size() for t in tensors.values())
        with open(index) as f:
            assert json.load(f)["metadata"]["total_size"] == total
    return tensors


def check_weights(fixture, tensors, config):
    storage = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[
        config["torch_dtype"]]
    for name, tensor in tensors.items():
        assert tensor.dtype == storage, f"{name}: {tensor.dtype}"
        expected = expected_tensor(fixture, name, tuple(tensor.shape)).to(storage)
        bits = torch.int32 if storage == torch.float32 else torch.int16
        if not torch.equal(tensor.view(bits), expected.view(bits)):
            raise SystemExit(f"{fixture}: {name} differs from the generator's definition")


# ----------------------------------------------------------------------
# RoPE as configured, computed independently, against what HF uses.

def expected_rope(config):
    head_dim = config["head_dim"]
    theta = config["rope_theta"]
    freq = 1.0 / theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    scaling = config.get("rope_scaling")
    attention = 1.0
    bands = None
    if scaling and scaling["rope_type"] == "llama3":
        factor = scaling["factor"]
        low, high = scaling["low_freq_factor"], scaling["high_freq_factor"]
        old = scaling["original_max_position_embeddings"]
        wavelength = 2 * math.pi / freq
        out = freq.copy()
        bands = [0, 0, 0]
        for i, w in enumerate(wavelength):
            if w < old / high:
                bands[0] += 1
            elif w > old / low:
                out[i] = freq[i] / factor
                bands[2] += 1
            else:
                smooth = (old / w - low) / (high - low)
                out[i] = (1 - smooth) * freq[i] / factor + smooth * freq[i]
                bands[1] += 1
        freq = out
    elif scaling and scaling["rope_type"] == "yarn":
        factor = scaling["factor"]
        old = scaling["original_max_position_embeddings"]
        beta_fast, beta_slow = scaling.get("beta_fast", 32), scaling.get("beta_slow", 1)

        def dimension(rotations):
            return head_dim * math.log(old / (rotations * 2 * math.pi)) / (2 * math.log(theta))

        low = max(math.floor(dimension(beta_fast)), 0)
        high = min(math.ceil(dimension(beta_slow)), head_dim - 1)
        if low == high:
            high += 0.001
        ramp = np.clip((np.arange(head_dim // 2) - low) / (high - low), 0, 1)
        freq = freq / factor * ramp + freq * (1 - ramp)
        attention = 0.1 * math.log(factor) + 1.0
        bands = [int((ramp == 0).sum()), int(((ramp > 0) & (ramp < 1)).sum()), int((ramp == 1).sum())]
    return freq, attention, bands


def check_rope(fixture, model, config):
    freq, attention, bands = expected_rope(config)
    rotary = model.model.rotary_emb
    got = rotary.inv_freq.detach().double().numpy()
    if not np.allclose(got, freq, rtol=1e-6, atol=0):
        raise SystemExit(f"{fixture}: HF inverse frequencies {got} != expected {freq}")
    if abs(float(rotary.attention_scaling) - attention) > 1e-12:
        raise SystemExit(f"{fixture}: HF attention scaling {rotary.attention_scaling} != {attention}")
    if bands is not None and min(bands) == 0:
        raise SystemExit(f"{fixture}: rope scaling bands {bands}: one of them is empty")
    return bands


# ----------------------------------------------------------------------
# In-Place TTT (SPEC.md sections 3-4), patched into HF's MLP modules.

class TTT:
    """Replaces the forward of every TTT layer's MLP. mode: 'off' (plain
    model), 'oneshot' (whole sequence in one call), 'stream' (any pieces,
    state kept across calls)."""

    def __init__(self, model, config, tensors):
        self.mode = "off"
        self.chunk = config["ttt_chunk"]
        self.eta = float(config["ttt_lr"])
        self.target = config.get("ttt_target", "hidden_states")
        self.layers = {}
        self.embeddings = None
        model.model.embed_tokens.register_forward_hook(self._capture_embeddings)
        for layer in config["ttt_layers"]:
            mlp = model.model.layers[layer].mlp
            conv = tensors[f"model.layers.{layer}.mlp.ttt_conv.weight"].double()
            proj_name = f"model.layers.{layer}.mlp.ttt_proj.weight"
            proj = tensors[proj_name].double() if config.get("ttt_proj", True) else None
            assert (proj_name in tensors) == (proj is not None)
            self.layers[layer] = {"mlp": mlp, "conv": conv, "proj": proj,
                                  "original": mlp.forward}
            mlp.forward = self._make_forward(layer)
        self.reset()

    def _capture_embeddings(self, module, inputs, output):
        self.embeddings = output

    def reset(self):
        for state in self.layers.values():
            state["W"] = state["mlp"].down_proj.weight.detach().clone()
            state["h"] = []
            state["t"] = []

    def _make_forward(self, layer):
        def forward(x):
            return self._forward(layer, x)
        return forward

    def _values(self, state, t_chunk):
        """Target values of one full chunk: per-chunk depthwise conv, then P."""
        tc = F.conv1d(t_chunk.T.unsqueeze(0), state["conv"], padding=2,
                      groups=t_chunk.shape[1])[0].T
        return tc if state["proj"] is None else tc @ state["proj"]

    def _forward(self, layer, x):
        state = self.layers[layer]
        mlp = state["mlp"]
        if self.mode == "off":
            return state["original"](x)
        assert x.shape[0] == 1, "batch size 1"
        h = (mlp.act_fn(mlp.gate_proj(x)) * mlp.up_proj(x))[0]
        t = (x if self.target == "hidden_states" else self.embeddings)[0]
        assert t.shape == x[0].shape
        if self.mode == "oneshot":
            out = self._oneshot(state, h, t)
        else:
            out = self._stream(state, h, t)
        # No down_proj bias in a TTT layer, for any n (SPEC.md section 3): what
        # the authors' training computes. The "off" mode above keeps it.
        return out.unsqueeze(0)

    def _oneshot(self, state, h, t):
        n, C = h.shape[0], self.chunk
        W = state["mlp"].down_proj.weight
        if n < C:
            return h @ W.T
        K = -(-n // C)
        hp = F.pad(h, (0, 0, 0, K * C - n)).reshape(K, C, -1)
        tp = F.pad(t, (0, 0, 0, K * C - n)).reshape(K, C, -1)
        d = tp.shape[2]
        # conv inside each chunk: the chunks are the batch of conv1d
        tc = F.conv1d(tp.transpose(1, 2), state["conv"], padding=2, groups=d).transpose(1, 2)
        V = tc if state["proj"] is None else tc @ state["proj"]
        outputs = []
        for k in range(K):
            outputs.append(hp[k] @ W.T)
            if k < K - 1 or n % C == 0:
                W = W + self.eta * V[k].T @ hp[k]
        state["W"] = W
        return torch.cat(outputs)[:n]

    def _stream(self, state, h, t):
        rows = []
        for i in range(h.shape[0]):
            rows.append(h[i] @ state["W"].T)
            state["h"].append(h[i])
            state["t"].append(t[i])
            if len(state["h"]) == self.chunk:
                hc, tcn = torch.stack(state["h"]), torch.stack(state["t"])
                state["W"] = state["W"] + self.eta * self._values(state, tcn).T @ hc
                state["h"], state["t"] = [], []
        return torch.stack(rows)


# ----------------------------------------------------------------------

def run_oneshot(model, ttt, tokens, mode):
    if ttt is not None:
        ttt.reset()
        ttt.mode = mode
    with torch.no_grad():
        ids = torch.from_numpy(np.array(tokens, dtype=np.int64))[None]
        logits = model(input_ids=ids, use_cache=False).logits[0]
    if ttt is not None:
        ttt.mode = "off"
    return logits


def run_streaming(model, ttt, tokens, piece):
    ttt.reset()
    ttt.mode = "stream"
    cache = transformers.DynamicCache(config=model.config)
    rows = []
    with torch.no_grad():
        for start in range(0, len(tokens), piece):
            ids = torch.from_numpy(np.array(tokens[start:start + piece], dtype=np.int64))[None]
            out = model(input_ids=ids, past_key_values=cache, use_cache=True)
            cache = out.past_key_values
            rows.append(out.logits[0])
    ttt.mode = "off"
    return torch.cat(rows)


def load(directory, fixture):
    with open(os.path.join(directory, "config.json")) as f:
        config = json.load(f)
    tensors = read_checkpoint(directory)
    check_weights(fixture, tensors, config)
    model, info = AutoModelForCausalLM.from_pretrained(
        directory, dtype=torch.float32, attn_implementation="sdpa", output_loading_info=True)
    missing = set(info.get("missing_keys") or [])
    unexpected = set(info.get("unexpected_keys") or [])
    if missing or info.get("mismatched_keys") or any(".ttt_" not in k for k in unexpected):
        raise SystemExit(f"{fixture}: HF loading report {info}")
    if config.get("tie_word_embeddings"):
        assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    model = model.double().eval()
    # what HF uses is what was stored
    for name, parameter in model.named_parameters():
        stored = tensors[name] if name in tensors else tensors["model.embed_tokens.weight"]
        assert torch.equal(parameter.detach(), stored.double()), name
    bands = check_rope(fixture, model, config)
    ttt = TTT(model, config, tensors) if config.get("ttt_mode") else None
    return config, model, ttt, bands


def compute(fixtures_dir, verbose=True):
    """Returns {golden name: (fixture, tokens, logits float32, ttt flag)}."""
    results = {}
    worst_stream = 0.0
    loaded = {}
    for fixture, n in GOLDENS:
        if fixture not in loaded:
            loaded[fixture] = load(os.path.join(fixtures_dir, fixture), fixture)
            config, model, ttt, bands = loaded[fixture]
            if verbose:
                print(f"{fixture}: loaded; rope {model.config.rope_parameters}"
                      + (f", bands kept/ramp/scaled {bands}" if bands else ""))
            if ttt is not None:
                check_ttt_strength(fixture, model, ttt, config)
        config, model, ttt, _ = loaded[fixture]
        name = golden_name(fixture, n)
        tokens = golden_tokens(name, n, config["vocab_size"])
        base = run_oneshot(model, ttt, tokens, "off")
        if ttt is None:
            logits = base
        else:
            logits = run_oneshot(model, ttt, tokens, "oneshot")
            for piece in (1, 7):
                streamed = run_streaming(model, ttt, tokens, piece)
                difference = (streamed - logits).abs().max().item()
                worst_stream = max(worst_stream, difference)
                if not difference <= STREAM_TOLERANCE:
                    raise SystemExit(f"{name}: streaming in pieces of {piece} differs from "
                                     f"one-shot by {difference}")
            C = config["ttt_chunk"]
            moved = (logits - base).abs()
            # Without updates a TTT layer is the base layer minus its down_proj
            # bias (none there), so "no update yet" is checked against eta = 0.
            eta = ttt.eta
            ttt.eta = 0.0
            frozen = run_oneshot(model, ttt, tokens, "oneshot")
            ttt.eta = eta
            head = (logits - frozen)[:min(C, n)].abs().max().item()
            if head != 0.0:
                raise SystemExit(f"{name}: the first chunk must not see any update ({head})")
            if n < C:
                assert (logits - frozen).abs().max().item() == 0.0
            if not config.get("mlp_bias"):
                assert (frozen - base).abs().max().item() == 0.0, "eta = 0 must be the base model"
            if verbose:
                print(f"  {name}: |TTT - base| after the first chunk "
                      f"{moved[C:].max().item() if n > C else 0.0:.4g}")
        assert torch.isfinite(logits).all()
        results[name] = (fixture, tokens, logits.float().numpy(), 1 if ttt is not None else 0)
        if verbose:
            print(f"  {name}: max |logit| {logits.abs().max().item():.3f}")
    if verbose:
        print(f"max |streaming - one-shot| over all TTT goldens: {worst_stream:.3g}")
    return results, worst_stream


def check_ttt_strength(fixture, model, ttt, config):
    """TTT must move the logits visibly after the first chunk and stay tame
    over a long sequence."""
    n = 256
    tokens = golden_tokens(f"{fixture}-strength", n, config["vocab_size"])
    base = run_oneshot(model, ttt, tokens, "off")
    adapted = run_oneshot(model, ttt, tokens, "oneshot")
    C = config["ttt_chunk"]
    moved = (adapted - base).abs()
    if C < n and not moved[C:2 * C].max().item() > 1e-2:
        raise SystemExit(f"{fixture}: TTT moves the second chunk's logits by only "
                         f"{moved[C:2 * C].max().item()}")
    growth = adapted.abs().max().item() / base.abs().max().item()
    if not torch.isfinite(adapted).all() or growth > 3:
        raise SystemExit(f"{fixture}: logits grow by {growth} over {n} tokens")
    weights = max((s["W"] - s["mlp"].down_proj.weight).abs().max().item() /
                  s["mlp"].down_proj.weight.abs().max().item() for s in ttt.layers.values())
    print(f"  {fixture}: {n} tokens: |TTT - base| in the second chunk "
          f"{moved[C:2 * C].max().item() if C < n else 0.0:.4g}, max logit ratio {growth:.3f}, "
          f"largest W change / max |W_down| {weights:.3f}")


def write_golden(path, fixture, tokens, logits, ttt):
    n, vocab = logits.shape
    with open(path, "wb") as f:
        f.write(MAGIC + struct.pack("<IIII", VERSION, n, vocab, ttt))
        f.write(np.asarray(tokens, dtype="<i4").tobytes())
        f.write(np.ascontiguousarray(logits, dtype="<f4").tobytes())
        f.write(fixture.encode())


def read_golden(path):
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == MAGIC
    version, n, vocab, ttt = struct.unpack("<IIII", data[8:24])
    assert version == VERSION
    tokens = np.frombuffer(data, "<i4", n, 24)
    logits = np.frombuffer(data, "<f4", n * vocab, 24 + 4 * n).reshape(n, vocab)
    fixture = data[24 + 4 * n + 4 * n * vocab:].decode()
    return fixture, tokens, logits, ttt


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--fixtures-dir", help="fixtures already written by tests/write-fixtures")
    source.add_argument("--build-dir", help="build tree holding tests/write-fixtures")
    parser.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)),
                        help="where the goldens go (default: this script's directory)")
    parser.add_argument("--check", action="store_true",
                        help="compare with the goldens in --out instead of writing them")
    args = parser.parse_args()

    torch.manual_seed(0)
    print(f"transformers {transformers.__version__}, torch {torch.__version__}")
    with tempfile.TemporaryDirectory() as scratch:
        fixtures_dir = args.fixtures_dir
        if args.build_dir:
            program = os.path.join(args.build_dir, "tests", "write-fixtures")
            fixtures_dir = os.path.join(scratch, "fixtures")
            subprocess.run([program, fixtures_dir], check=True, stdout=subprocess.DEVNULL)
        results, _ = compute(fixtures_dir)

    if args.check:
        worst = 0.0
        for name, (fixture, tokens, logits, ttt) in results.items():
            stored = read_golden(os.path.join(args.out, name + ".bin"))
            assert stored[0] == fixture and stored[3] == ttt and np.array_equal(stored[1], tokens)
            difference = float(np.abs(stored[2] - logits).max())
            worst = max(worst, difference)
            print(f"{name}: max |stored - recomputed| {difference:.3g}")
        if worst > 1e-5:
            raise SystemExit("goldens out of date")
        return

    os.makedirs(args.out, exist_ok=True)
    total = 0
    for name, (fixture, tokens, logits, ttt) in results.items():
        path = os.path.join(args.out, name + ".bin")
        write_golden(path, fixture, tokens, logits, ttt)
        total += os.path.getsize(path)
        back = read_golden(path)
        assert back[0] == fixture and np.array_equal(back[2], logits)
    with open(os.path.join(args.out, "index.txt"), "w") as f:
        for name in results:
            f.write(name + "\n")
    print(f"wrote {len(results)} goldens, {total} bytes, to {args.out}")
    if total > 1.5e6:
        raise SystemExit("goldens exceed 1.5 MB")


if __name__ == "__main__":
    sys.exit(main())
