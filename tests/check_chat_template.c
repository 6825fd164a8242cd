/* clttt serve's chat templates: each family rendered in C equals what
 * transformers renders from the same tokenizer_config.json
 * (tests/chat/generate.py); unknown and missing templates are refused by
 * name. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve_chat.h"
#include "test_util.h"

static const chat_message system_user[] = {
    {"system", "You are a terse assistant."},
    {"user", "Name a colour. "},
};
static const chat_message user_only[] = {{"user", "Hello!\nHow are you?"}};
static const chat_message multi_turn[] = {
    {"system", " Be kind. "},
    {"user", "Hi"},
    {"assistant", "<think>\nThe user greets.\n</think>\n\nHello! How can I help?"},
    {"user", "Tell me a story."},
};

static void check_family(const char *family, chat_template_kind kind) {
  char dir[1024], error[512] = "";
  snprintf(dir, sizeof dir, "%s/chat/%s", test_environment("CLTTT_TEST_DATA", "tests"), family);
  chat_template tmpl;
  ck_assert_msg(chat_template_load(&tmpl, dir, error, sizeof error), "%s: %s", dir, error);
  ck_assert_int_eq(tmpl.kind, kind);
  static const struct {
    const char *name;
    const chat_message *messages;
    int count;
  } conversations[] = {
      {"system_user", system_user, 2},
      {"user_only", user_only, 1},
      {"multi_turn", multi_turn, 4},
  };
  for (int i = 0; i < 3; i++) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s.txt", dir, conversations[i].name);
    char *expected = test_read_file(path, NULL);
    ck_assert_msg(expected != NULL, "cannot read %s", path);
    char *rendered = chat_template_render(&tmpl, conversations[i].messages, conversations[i].count, 1, error,
                                          sizeof error);
    ck_assert_msg(rendered != NULL, "%s: %s", path, error);
    ck_assert_msg(strcmp(rendered, expected) == 0, "%s:\nrendered:\n[%s]\nexpected:\n[%s]", path, rendered,
                  expected);
    free(rendered);
    free(expected);
  }
  chat_template_free(&tmpl);
}

START_TEST(test_qwen3) { check_family("qwen3", CHAT_TEMPLATE_CHATML); }
END_TEST
START_TEST(test_qwen25_default_system) { check_family("qwen25", CHAT_TEMPLATE_CHATML); }
END_TEST
START_TEST(test_llama3) { check_family("llama3", CHAT_TEMPLATE_LLAMA3); }
END_TEST
START_TEST(test_llama31_dates) { check_family("llama31", CHAT_TEMPLATE_LLAMA3); }
END_TEST

START_TEST(test_unknown_template_is_named) {
  chat_template tmpl;
  chat_template_from_string(&tmpl, "{% for m in messages %}[INST] {{ m.content }} [/INST]{% endfor %}", "<s>");
  ck_assert_int_eq(tmpl.kind, CHAT_TEMPLATE_UNKNOWN);
  char error[512];
  char *rendered = chat_template_render(&tmpl, user_only, 1, 1, error, sizeof error);
  ck_assert_ptr_null(rendered);
  ck_assert_msg(strstr(error, "[INST]") != NULL, "the error does not show the template: %s", error);
  chat_template_free(&tmpl);
}
END_TEST

START_TEST(test_missing_template_and_bad_role) {
  /* stories260K has no tokenizer_config.json. */
  chat_template tmpl;
  char error[512];
  ck_assert(chat_template_load(&tmpl, test_environment("CLTTT_STORIES_DIR", "."), error, sizeof error));
  ck_assert_int_eq(tmpl.kind, CHAT_TEMPLATE_NONE);
  ck_assert_ptr_null(chat_template_render(&tmpl, user_only, 1, 1, error, sizeof error));
  ck_assert_msg(strstr(error, "no chat template") != NULL, "%s", error);
  chat_template_free(&tmpl);

  chat_template_from_string(&tmpl, "<|im_start|>", NULL);
  const chat_message tool[] = {{"tool", "42"}};
  ck_assert_ptr_null(chat_template_render(&tmpl, tool, 1, 1, error, sizeof error));
  ck_assert_msg(strstr(error, "'tool'") != NULL, "%s", error);
  chat_template_free(&tmpl);
}
END_TEST

START_TEST(test_malformed_config) {
  char dir[512], error[512] = "";
  test_make_temporary_directory(dir, sizeof dir);
  test_write_text(dir, "tokenizer_config.json", "{\"chat_template\": ");
  chat_template tmpl;
  ck_assert(!chat_template_load(&tmpl, dir, error, sizeof error));
  ck_assert_msg(strstr(error, "tokenizer_config.json") != NULL, "%s", error);
  test_remove_directory(dir);
}
END_TEST

static Suite *chat_template_suite(void) {
  Suite *suite = suite_create("chat_template");
  TCase *tc = tcase_create("render");
  tcase_add_test(tc, test_qwen3);
  tcase_add_test(tc, test_qwen25_default_system);
  tcase_add_test(tc, test_llama3);
  tcase_add_test(tc, test_llama31_dates);
  tcase_add_test(tc, test_unknown_template_is_named);
  tcase_add_test(tc, test_missing_template_and_bad_role);
  tcase_add_test(tc, test_malformed_config);
  suite_add_tcase(suite, tc);
  return suite;
}

int main(void) {
  SRunner *runner = srunner_create(chat_template_suite());
  srunner_run_all(runner, CK_NORMAL);
  int failed = srunner_ntests_failed(runner);
  srunner_free(runner);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
