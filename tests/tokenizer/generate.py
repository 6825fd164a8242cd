#!/usr/bin/env python3
"""Regenerates the tokenizer golden data in this directory.

Not run by the build or CI: its outputs are committed. Needs the
`tokenizers` package (pip install tokenizers) and numpy; the stories260K
part needs the model directory (--stories-dir or $CLTTT_STORIES_DIR).

Writes:
  qwen-like/tokenizer.json, qwen-like/tokenizer_config.json
      byte-level BPE trained on training.txt with Qwen2's pre-tokenizer regex,
      an NFC normalizer, merges written as "a b" strings, <|endoftext|> from
      training plus <|im_start|>, <|im_end|> (special) and <think>, </think>
      (not special) added afterwards.
  llama3-like/tokenizer.json
      the same with LLaMA-3's regex (digits in groups of up to three),
      ignore_merges, merges as [a, b] pairs, no normalizer, and a
      TemplateProcessing post-processor that prepends <|begin_of_text|>.
  cases.txt                 one JSON string per line: the test inputs
  expected-qwen-like.txt    ids per case (no special tokens added), one line each
  expected-llama3-like.txt
  stories260K-cases.txt     JSON strings for the llama2.c tokenizer
  expected-stories260K.txt  ids with BOS, by an independent Python version of
                            llama2.c's encode (a plain quadratic loop)
  stories260K-greedy.txt    line 1: BOS + 60 greedy ids of the model (numpy
                            forward pass); line 2: their decoded text (JSON)
"""

import argparse
import json
import os
import struct
import sys
import unicodedata

HERE = os.path.dirname(os.path.abspath(__file__))

# The pre-tokenizer regexes of Qwen2/Qwen3 and of LLaMA-3, as their
# tokenizer.json files spell them. They differ only in \p{N} vs \p{N}{1,3}.
QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
                 r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
                  r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

CASES = [
    "",
    "Hello, world!",
    "Once upon a time, there was a little girl named Lily.",
    "The lighthouse keeper climbed the spiral stairs.",
    # contractions, lower, upper and mixed case
    "I'm sure it's fine, isn't it? We're here, they've gone, you'll see, she'd know.",
    "I'M SURE IT'S FINE. WE'RE HERE, THEY'VE GONE, YOU'LL SEE, SHE'D KNOW, DON'T.",
    "dOn'T wE'Re It'S yoU'Ll i'M tHeY'vE hE'd",
    "'s 't 're 've 'm 'll 'd 'S 'T 'RE 'VE 'M 'LL 'D",
    "rock'n'roll o'clock ''quoted'' 'tis 'twas",
    # digit runs of many lengths
    "1", "12", "123", "1234", "12345", "123456", "1234567", "12345678901234567890",
    "3.14159 2.71828 1e-9 -17 +8",
    "1,000,000 and 1 000 000 and 1_000_000",
    "2023-11-05T12:30:45Z v1.2.3 0xFF 0b1011",
    "Phone: +1 (555) 010-4477, PIN 0000",
    "Arabic-Indic ٣٤٥٦٧, Devanagari १२३४, fractions ½ ¾, Roman Ⅻ Ⅷ, superscript x² y³",
    "Price $1,299.99 (≈ €1.100,50) — 12% off!",
    # whitespace
    "a  b   c    d     e",
    "   leading spaces",
    "trailing spaces   ",
    "   ",
    " ",
    "\t\ttabs\tand spaces \t mixed\t",
    "line1\nline2\n\nline4\n",
    "crlf\r\nline two\r\n\r\nend",
    "\n\n\n",
    " \n \n ",
    "mixed \t\n\r\n  end",
    "word\n    indented\n\tdeeper",
    "lone\rcarriage return",
    "no-break\u00a0space and\u3000ideographic space",
    "line\u2028separator\u2029paragraph\u0085next",
    # CJK and other scripts
    "你好，世界！今天天气很好。",
    "我喜欢喝茶，也喜欢看书。",
    "日本語のテキストです。ひらがなとカタカナ。",
    "한국어 문장입니다. 감사합니다.",
    "Привет, как дела? Ёлка, ёжик, ЖЁЛТЫЙ.",
    "مرحبا بالعالم، كيف حالك؟",
    "Γειά σου Κόσμε!",
    "नमस्ते दुनिया।",
    "ภาษาไทยไม่มีช่องว่าง",
    "עברית מימין לשמאל",
    # accented Latin (precomposed: the C tokenizer treats NFC as identity)
    "Café naïve façade Ångström crème brûlée",
    "Straße Œuvre Ĳssel ﬁnal æsir Ðóra",
    "Tiếng Việt có dấu",
    "Zażółć gęślą jaźń",
    # emoji, including ZWJ sequences, skin tones, flags, variation selectors
    "👍",
    "👍🏽 👋🏿 thumbs",
    "👨‍👩‍👧‍👦 family",
    "👩‍💻 coder and 🧑🏽‍🚀 astronaut",
    "🏳️‍🌈 🇫🇷🇯🇵 flags",
    "I ❤️ tokenizers 🎉🎉🎉",
    "☕️☕ ✨",
    "𝄞 music 𐍈 gothic 🀄 mahjong",
    # combining marks with nothing to combine with (NFC leaves them alone)
    "\u0301",
    "\u0308 lone diaeresis",
    "( ͡° ͜ʖ ͡°)",
    # zero-width characters
    "zero\u200bwidth\u200cnon\u200djoiner\ufeffbom",
    # code
    "def f(x):\n    return x**2  # square\n",
    "int main(void) { return argc > 1 ? 0 : 1; }",
    "if (a && b || !c) { x += 1; y <<= 2; }",
    "<div class=\"note\">Tom &amp; Jerry &lt;3</div>",
    "https://example.org/search?q=tide+tables&lang=en#results",
    "{\"id\": 42, \"tags\": [\"alpha\", \"beta\"], \"ok\": true}",
    "!!!???... --- === +++ *** ~~~ ```",
    "a...b,,c;;d::e",
    "Supercalifragilisticexpialidocious",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "ababababababababab",
    # special tokens inside text
    "<|endoftext|>",
    "a<|endoftext|>b",
    "<|im_start|>user\nHi there!<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|><|im_end|><|im_start|>",
    "<|im_start <|im_end| |im_end|> <|endoftext",
    "<think>\nLet me reason.\n</think>\n\nThe answer is 42.",
    "<|begin_of_text|>Hello<|end_of_text|>",
    "text <|begin_of_text|> spaced <|end_of_text|> out",
    "<|<|endoftext|>|>",
]

STORIES_CASES = [
    "",
    "Once upon a time",
    "Once upon a time, there was a little girl named Lily.",
    "The cat sat on the mat.",
    "Tom and Sue went to the park. They played with a big red ball!",
    "  two leading spaces",
    "numbers 12345 and 3.14",
    "naïve café",
    "emoji 😀 here",
    "line\nbreak",
    "Lily said, \"I'm happy!\"",
]


def check_cases():
    for case in CASES:
        # The C tokenizer does not normalize; golden cases must already be NFC.
        assert unicodedata.normalize("NFC", case) == case, repr(case)
        assert "\0" not in case


def training_lines():
    with open(os.path.join(HERE, "training.txt"), encoding="utf-8") as file:
        text = file.read()
    lines = text.split("\n")
    # Windows line endings, which a text file in git would not keep reliably.
    extra = ["windows line endings\r\nare here\r\n", "and here\r\n\r\n"]
    return [line + "\n" for line in lines] + extra


def train(pattern, specials):
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1500,
        min_frequency=1,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(training_lines(), trainer)
    return tokenizer


def make_qwen_like(directory):
    from tokenizers import AddedToken, normalizers

    tokenizer = train(QWEN2_PATTERN, ["<|endoftext|>"])
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.add_special_tokens([
        AddedToken("<|im_start|>", special=True, normalized=False),
        AddedToken("<|im_end|>", special=True, normalized=False),
    ])
    tokenizer.add_tokens([
        AddedToken("<think>", special=False, normalized=False),
        AddedToken("</think>", special=False, normalized=False),
    ])
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "tokenizer.json")
    tokenizer.save(path)
    # Older files (Qwen2's among them) write merges as "a b" strings.
    with open(path, encoding="utf-8") as file:
        data = json.load(file)
    data["model"]["merges"] = [merge if isinstance(merge, str) else " ".join(merge)
                               for merge in data["model"]["merges"]]
    write_json(path, data)
    write_json(os.path.join(directory, "tokenizer_config.json"),
               {"bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"})


def make_llama3_like(directory):
    from tokenizers import processors

    tokenizer = train(LLAMA3_PATTERN, ["<|begin_of_text|>", "<|end_of_text|>"])
    bos = tokenizer.token_to_id("<|begin_of_text|>")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|>:1 $B:1",
        special_tokens=[("<|begin_of_text|>", bos)])
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "tokenizer.json")
    tokenizer.save(path)
    with open(path, encoding="utf-8") as file:
        data = json.load(file)
    data["model"]["ignore_merges"] = True
    data["model"]["merges"] = [merge.split(" ") if isinstance(merge, str) else merge
                               for merge in data["model"]["merges"]]
    write_json(path, data)


def write_json(path, data):
    with open(path, "w", encoding="utf-8") as file:
        json.dump(data, file, ensure_ascii=False, separators=(",", ":"))
        file.write("\n")


def write_cases(path, cases):
    with open(path, "w", encoding="utf-8", newline="\n") as file:
        for case in cases:
            file.write(json.dumps(case, ensure_ascii=True) + "\n")


def write_ids(path, rows):
    with open(path, "w", encoding="utf-8", newline="\n") as file:
        for ids in rows:
            file.write(" ".join(str(i) for i in ids) + "\n")


def expected_ids(directory):
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(os.path.join(directory, "tokenizer.json"))
    rows = []
    for case in CASES:
        ids = tokenizer.encode(case, add_special_tokens=False).ids
        assert tokenizer.decode(ids, skip_special_tokens=False) == case, repr(case)
        rows.append(ids)
    return rows


# ---------------------------------------------------------------------------
# llama2.c tokenizer, written from its file format and encode semantics.

def read_llama2c(path):
    with open(path, "rb") as file:
        data = file.read()
    (max_length,) = struct.unpack_from("<i", data, 0)
    offset = 4
    pieces, scores = [], []
    while offset < len(data):
        score, length = struct.unpack_from("<fi", data, offset)
        offset += 8
        pieces.append(data[offset:offset + length])
        scores.append(score)
        offset += length
    assert max(len(p) for p in pieces) <= max_length
    assert len(set(pieces)) == len(pieces), "duplicate pieces"
    return pieces, scores


def llama2c_encode(pieces, scores, text, add_bos=True):
    lookup = {piece: index for index, piece in enumerate(pieces)}
    data = text.encode("utf-8")
    tokens = [1] if add_bos else []
    if not data:
        return tokens
    body = [lookup[b" "]]
    i = 0
    while i < len(data):
        j = i + 1
        while j < len(data) and j - i < 4 and (data[j] & 0xC0) == 0x80:
            j += 1
        chunk = data[i:j]
        if chunk in lookup:
            body.append(lookup[chunk])
        else:
            body.extend(byte + 3 for byte in chunk)
        i = j
    while True:
        best_score, best_index, best_id = -1e10, -1, -1
        for k in range(len(body) - 1):
            merged = pieces[body[k]] + pieces[body[k + 1]]
            if merged in lookup and scores[lookup[merged]] > best_score:
                best_score, best_index, best_id = scores[lookup[merged]], k, lookup[merged]
        if best_index < 0:
            break
        body[best_index:best_index + 2] = [best_id]
    return tokens + body


def llama2c_decode(pieces, ids):
    out = b""
    previous = -1
    for token in ids:
        if token in (1, 2):
            previous = token
            continue
        piece = pieces[token]
        if len(piece) == 6 and piece.startswith(b"<0x") and piece.endswith(b">"):
            piece = bytes([int(piece[3:5], 16)])
        elif previous == 1 and piece.startswith(b" "):
            piece = piece[1:]
        out += piece
        previous = token
    return out.decode("utf-8")


# ---------------------------------------------------------------------------
# stories260K greedy generation: a plain numpy LLaMA forward pass.

def load_safetensors(path):
    import numpy as np

    with open(path, "rb") as file:
        data = file.read()
    (header_length,) = struct.unpack_from("<Q", data, 0)
    header = json.loads(data[8:8 + header_length])
    base = 8 + header_length
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32"
        start, end = info["data_offsets"]
        tensors[name] = np.frombuffer(data[base + start:base + end], dtype="<f4").reshape(
            info["shape"]).astype(np.float64)
    return tensors


def llama_logits(weights, config, tokens):
    import numpy as np

    heads, kv_heads = config["num_attention_heads"], config["num_key_value_heads"]
    head_dim = config.get("head_dim") or config["hidden_size"] // heads
    eps, theta = config["rms_norm_eps"], config["rope_theta"]
    count = len(tokens)

    def rms_norm(x, weight):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * weight

    inverse = 1.0 / theta ** (np.arange(0, head_dim, 2) / head_dim)
    angles = np.outer(np.arange(count), inverse)
    angles = np.concatenate([angles, angles], axis=-1)
    cos, sin = np.cos(angles)[:, None, :], np.sin(angles)[:, None, :]

    def rope(x):
        half = head_dim // 2
        rotated = np.concatenate([-x[..., half:], x[..., :half]], axis=-1)
        return x * cos + rotated * sin

    mask = np.triu(np.full((count, count), -np.inf), 1)
    x = weights["model.embed_tokens.weight"][tokens]
    for layer in range(config["num_hidden_layers"]):
        prefix = f"model.layers.{layer}."
        h = rms_norm(x, weights[prefix + "input_layernorm.weight"])
        q = (h @ weights[prefix + "self_attn.q_proj.weight"].T).reshape(count, heads, head_dim)
        k = (h @ weights[prefix + "self_attn.k_proj.weight"].T).reshape(count, kv_heads, head_dim)
        v = (h @ weights[prefix + "self_attn.v_proj.weight"].T).reshape(count, kv_heads, head_dim)
        q, k = rope(q), rope(k)
        k = np.repeat(k, heads // kv_heads, axis=1)
        v = np.repeat(v, heads // kv_heads, axis=1)
        scores = np.einsum("thd,shd->hts", q, k) / np.sqrt(head_dim) + mask
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        scores /= scores.sum(axis=-1, keepdims=True)
        attended = np.einsum("hts,shd->thd", scores, v).reshape(count, heads * head_dim)
        x = x + attended @ weights[prefix + "self_attn.o_proj.weight"].T
        h = rms_norm(x, weights[prefix + "post_attention_layernorm.weight"])
        gate = h @ weights[prefix + "mlp.gate_proj.weight"].T
        up = h @ weights[prefix + "mlp.up_proj.weight"].T
        x = x + (gate / (1 + np.exp(-gate)) * up) @ weights[prefix + "mlp.down_proj.weight"].T
    x = rms_norm(x, weights["model.norm.weight"])
    return x @ weights["model.embed_tokens.weight"].T


def stories(stories_dir):
    pieces, scores = read_llama2c(os.path.join(stories_dir, "tok512.bin"))
    write_cases(os.path.join(HERE, "stories260K-cases.txt"), STORIES_CASES)
    rows = []
    for case in STORIES_CASES:
        ids = llama2c_encode(pieces, scores, case)
        assert llama2c_decode(pieces, ids) == case, repr(case)
        rows.append(ids)
    write_ids(os.path.join(HERE, "expected-stories260K.txt"), rows)

    with open(os.path.join(stories_dir, "config.json")) as file:
        config = json.load(file)
    weights = load_safetensors(os.path.join(stories_dir, "model.safetensors"))
    tokens = [1]
    for _ in range(60):
        tokens.append(int(llama_logits(weights, config, tokens)[-1].argmax()))
    text = llama2c_decode(pieces, tokens)
    assert text.startswith("Once upon a time, there was a little girl named Lily."), text
    with open(os.path.join(HERE, "stories260K-greedy.txt"), "w", encoding="utf-8", newline="\n") as file:
        file.write(" ".join(str(t) for t in tokens) + "\n")
        file.write(json.dumps(text, ensure_ascii=True) + "\n")
    print("stories260K greedy:", text)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stories-dir", default=os.environ.get("CLTTT_STORIES_DIR"),
                        help="stories260K model directory (default $CLTTT_STORIES_DIR)")
    arguments = parser.parse_args()

    check_cases()
    write_cases(os.path.join(HERE, "cases.txt"), CASES)
    for name, make in (("qwen-like", make_qwen_like), ("llama3-like", make_llama3_like)):
        directory = os.path.join(HERE, name)
        make(directory)
        write_ids(os.path.join(HERE, f"expected-{name}.txt"), expected_ids(directory))
        with open(os.path.join(directory, "tokenizer.json"), encoding="utf-8") as file:
            print(name, "vocabulary:", len(json.load(file)["model"]["vocab"]))
    if arguments.stories_dir:
        stories(arguments.stories_dir)
    else:
        print("no --stories-dir: stories260K files left as they are", file=sys.stderr)


if __name__ == "__main__":
    main()
