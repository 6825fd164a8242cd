/* Text <-> token ids for the models clttt runs.
 *
 * Two formats, chosen by what the model directory holds:
 *  - tokenizer.json (HuggingFace): byte-level BPE as Qwen2/Qwen3 and LLaMA-3
 *    use it. Added tokens (<|im_start|>, <|begin_of_text|>...) are matched in
 *    the raw text first and never split; the rest is split by the
 *    pre-tokenizer's regex (PCRE2, Unicode properties) and each piece is
 *    merged by rank.
 *  - tok*.bin (llama2.c): SentencePiece-like pieces with scores and
 *    <0xNN> byte fallback, encoded exactly as llama2.c's encode does.
 *
 * A loaded tokenizer is read-only, so one tokenizer may serve several threads
 * at once; every call allocates its own scratch memory. */
#ifndef CLTTT_TOKENIZER_H
#define CLTTT_TOKENIZER_H

#include <stdint.h>

#include "clttt.h"

typedef struct tokenizer tokenizer;

/* Loads model_dir/tokenizer.json when present, else the first (by name)
 * model_dir/tok*.bin. Neither: CLTTT_ERROR_IO naming the directory.
 * Malformed files: CLTTT_ERROR_BAD_TOKENIZER naming file and what is wrong.
 * Model types other than BPE, non-byte-level pre-tokenizers, normalizers
 * other than none/NFC: CLTTT_ERROR_UNSUPPORTED naming the type.
 *
 * BOS/EOS of a tokenizer.json come from model_dir/tokenizer_config.json
 * (bos_token, eos_token) when present, else from a TemplateProcessing
 * post-processor's leading special token, else from well-known names
 * (<|begin_of_text|>, <s>; <|end_of_text|>, <|endoftext|>, </s>). Qwen-style
 * tokenizers have no BOS (tokenizer_bos returns -1). llama2.c files: BOS 1,
 * EOS 2.
 *
 * An NFC normalizer is accepted and treated as the identity: text that is
 * already NFC (nearly all text) encodes exactly as HuggingFace encodes it. */
clttt_status tokenizer_load(tokenizer **out, const char *model_dir);
void tokenizer_free(tokenizer *tok);

/* Encodes NUL-terminated UTF-8 `text`. With add_bos and a tokenizer that has
 * a BOS, the BOS id comes first. *ids is malloc'ed (free() it; NULL when
 * *count is 0). Invalid UTF-8 is not an error: bytes that form no character
 * are encoded byte by byte. */
clttt_status tokenizer_encode(const tokenizer *tok, const char *text, int add_bos,
                              int32_t **ids, int *count);

/* Decodes `count` ids into a malloc'ed NUL-terminated string (free() it).
 * Special tokens of a tokenizer.json decode to their text (as HuggingFace's
 * decode does by default), so decode(encode(s)) == s. llama2.c: BOS and EOS
 * decode to nothing, and the leading space of the piece right after a BOS
 * is dropped. An id outside the vocabulary: CLTTT_ERROR_INVALID_ARGUMENT. */
clttt_status tokenizer_decode(const tokenizer *tok, const int32_t *ids, int count, char **text);

int tokenizer_bos(const tokenizer *tok);        /* -1 when none */
int tokenizer_eos(const tokenizer *tok);        /* -1 when none */
int tokenizer_vocab_size(const tokenizer *tok); /* highest id + 1 */
/* "bpe" (tokenizer.json) or "llama2c" (tok*.bin). */
const char *tokenizer_kind_name(const tokenizer *tok);

/* Id of a special token ("<|im_end|>") or of a vocabulary piece as the file
 * writes it ("Ġthe" in tokenizer.json, " the" in tok*.bin); for llama2.c
 * files "<s>" and "</s>" also name BOS and EOS. -1 when absent. */
int32_t tokenizer_token_to_id(const tokenizer *tok, const char *piece);
/* 1 for added special tokens (tokenizer.json) and BOS/EOS/unk (llama2.c). */
int tokenizer_is_special(const tokenizer *tok, int32_t id);

/* Streaming decode for printing tokens as they are generated. A character
 * whose UTF-8 bytes are split across tokens is held back until it is
 * complete; bytes that can never complete one are passed through as they
 * are, so the concatenation of everything put and flushed equals
 * tokenizer_decode of the same ids. */
typedef struct tokenizer_stream tokenizer_stream;

clttt_status tokenizer_stream_create(tokenizer_stream **out, const tokenizer *tok);
/* *text receives the newly complete text (possibly ""), valid until the next
 * call on this stream. */
clttt_status tokenizer_stream_put(tokenizer_stream *stream, int32_t id, const char **text);
/* Emits whatever is still held back (an incomplete character at the end). */
clttt_status tokenizer_stream_flush(tokenizer_stream *stream, const char **text);
/* Forgets held bytes and the previous token (a new, independent text). */
void tokenizer_stream_reset(tokenizer_stream *stream);
void tokenizer_stream_free(tokenizer_stream *stream);

#endif
