/* Chat templates of clttt serve: the two families Qwen3 and LLaMA-3 ship,
 * recognised by their markers in tokenizer_config.json's chat_template and
 * rendered in C (no Jinja). Anything else is refused by name, never
 * approximated: a wrong prompt format would silently degrade every answer. */
#ifndef CLTTT_SERVE_CHAT_H
#define CLTTT_SERVE_CHAT_H

#include <stddef.h>

typedef enum {
  CHAT_TEMPLATE_NONE = 0,  /* no chat_template in the model directory */
  CHAT_TEMPLATE_UNKNOWN,   /* one we do not render; chat requests are refused naming it */
  CHAT_TEMPLATE_CHATML,    /* <|im_start|>role\n...<|im_end|>\n (Qwen2/Qwen3) */
  CHAT_TEMPLATE_LLAMA3     /* <|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|> */
} chat_template_kind;

typedef struct {
  chat_template_kind kind;
  char *bos_token;         /* prepended by LLaMA-3 templates; "" when none */
  int strip_reasoning;     /* Qwen3: earlier assistant turns lose their <think> part */
  char *default_system;    /* Qwen2.5: the system message used when none is given; NULL when none */
  int knowledge_header;    /* LLaMA-3.1/3.2: "Cutting Knowledge Date" system preamble */
  int today_date;          /* LLaMA-3.2: the preamble's date is today's (strftime_now) */
  char *date_string;       /* LLaMA-3.1: the template's default date ("26 Jul 2024") */
  char description[160];   /* "ChatML", or the start of an unknown template */
} chat_template;

typedef struct {
  const char *role;        /* "system", "user", "assistant" */
  const char *content;
} chat_message;

/* Reads model_dir/tokenizer_config.json when there is one. Returns 0 with a
 * message in `error` only when the file exists but is not valid JSON. */
int chat_template_load(chat_template *tmpl, const char *model_dir, char *error, size_t error_size);
/* Recognises a template string (bos_token may be NULL). */
void chat_template_from_string(chat_template *tmpl, const char *text, const char *bos_token);
void chat_template_free(chat_template *tmpl);
/* "ChatML", "LLaMA-3", "none" or "unknown". */
const char *chat_template_name(const chat_template *tmpl);

/* The prompt for `messages`, ending with the assistant's header when
 * add_generation_prompt. Returns a malloc'ed string, or NULL with a message
 * in `error` (no template, an unknown one, a role the template has none for). */
char *chat_template_render(const chat_template *tmpl, const chat_message *messages, int count,
                           int add_generation_prompt, char *error, size_t error_size);

#endif
