/* What both tokenizer targets do with a tokenizer that loaded: encode a few
 * texts and the input itself, decode them whole and streamed, and decode
 * every single id. Nothing is compared: encoding is not always reversible
 * (added tokens may strip spaces), and the sanitizers watch the rest. */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "clttt.h"

static void encode_and_decode(const clttt_tokenizer *tok, const char *text, clttt_tokenizer_stream *stream) {
  for (int add_bos = 0; add_bos < 2; add_bos++) {
    int32_t *ids = NULL;
    int count = 0;
    if (clttt_tokenizer_encode(tok, text, add_bos, &ids, &count) != CLTTT_SUCCESS)
      continue;
    char *decoded = NULL;
    if (clttt_tokenizer_decode(tok, ids, count, &decoded) == CLTTT_SUCCESS)
      free(decoded);
    if (stream) {
      clttt_tokenizer_stream_reset(stream);
      const char *chunk = NULL;
      for (int i = 0; i < count; i++)
        clttt_tokenizer_stream_put(stream, ids[i], &chunk);
      clttt_tokenizer_stream_flush(stream, &chunk);
    }
    free(ids);
  }
}

void fuzz_exercise_tokenizer(const clttt_tokenizer *tok, const uint8_t *data, size_t size) {
  static const char *const texts[] = {
      "",
      "Hello world, 123 4567!",
      "  leading and trailing spaces  \n\n\ttabs",
      "<|im_start|>user\nHi<|im_end|><|endoftext|><s></s>",
      "\xc3\xbcn\xc3\xaf""c\xc3\xb6""d\xc3\xa9 \xe4\xbd\xa0\xe5\xa5\xbd \xf0\x9f\x98\x80",
      "bad \xff\xfe utf8 \xe4\xbd",
  };
  clttt_tokenizer_stream *stream = NULL;
  clttt_tokenizer_stream_create(&stream, tok);
  for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
    encode_and_decode(tok, texts[i], stream);
  /* The input's own bytes, some of which are the vocabulary's pieces. */
  char *text = fuzz_string(data, size > 256 ? 256 : size);
  encode_and_decode(tok, text, stream);
  free(text);
  clttt_tokenizer_stream_free(stream);
  int vocab = clttt_tokenizer_vocab_size(tok);
  for (int32_t id = 0; id < vocab && id < 1024; id++) {
    char *piece = NULL;
    if (clttt_tokenizer_decode(tok, &id, 1, &piece) == CLTTT_SUCCESS)
      free(piece);
    clttt_tokenizer_is_special(tok, id);
  }
  clttt_tokenizer_token_to_id(tok, "<|im_end|>");
  clttt_tokenizer_bos(tok);
  clttt_tokenizer_eos(tok);
}

