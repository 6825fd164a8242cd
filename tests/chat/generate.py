#!/usr/bin/env python3
"""Writes the chat-template fixtures of check_chat_template: a hand-written
tokenizer_config.json per template family (written for these tests in the
style of what Qwen2.5, Qwen3, LLaMA-3 and LLaMA-3.1 ship) and, for each
conversation below, the prompt transformers' chat template renderer (the one
apply_chat_template uses) produces with add_generation_prompt. Run from
anywhere; --check compares with the committed files instead of writing."""
import json
import os
import sys

from transformers.utils.chat_template_utils import render_jinja_template

HERE = os.path.dirname(os.path.abspath(__file__))

QWEN3 = (
    "{%- if messages[0].role == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- set ns = namespace(last_query_index=messages|length - 1) %}"
    "{%- for message in messages[::-1] %}"
    "{%- if message.role == 'user' %}{%- set ns.last_query_index = (messages|length - 1) - loop.index0 %}"
    "{%- break %}{%- endif %}"
    "{%- endfor %}"
    "{%- for message in messages %}"
    "{%- if message.role == 'user' or (message.role == 'system' and not loop.first) %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}"
    "{%- elif message.role == 'assistant' %}"
    "{%- set content = message.content %}"
    "{%- if loop.index0 < ns.last_query_index and '</think>' in content %}"
    "{%- set content = content.split('</think>')[-1].lstrip('\\n') %}"
    "{%- endif %}"
    "{{- '<|im_start|>assistant\\n' + content + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}"
    "{%- endif %}"
)

QWEN25 = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if not (loop.first and message.role == 'system') %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

LLAMA3 = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'"
    " + message['content'] | trim + '<|eot_id|>' %}"
    "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
    "{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)

LLAMA31 = (
    "{{- bos_token }}"
    "{%- if not date_string is defined %}{%- set date_string = \"26 Jul 2024\" %}{%- endif %}"
    "{%- if messages[0]['role'] == 'system' %}"
    "{%- set system_message = messages[0]['content'] | trim %}{%- set messages = messages[1:] %}"
    "{%- else %}{%- set system_message = \"\" %}{%- endif %}"
    "{{- '<|start_header_id|>system<|end_header_id|>\\n\\n' }}"
    "{{- 'Cutting Knowledge Date: December 2023\\n' }}"
    "{{- 'Today Date: ' + date_string + '\\n\\n' }}"
    "{{- system_message }}{{- '<|eot_id|>' }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
)

TEMPLATES = {
    "qwen3": (QWEN3, None),
    "qwen25": (QWEN25, None),
    "llama3": (LLAMA3, "<|begin_of_text|>"),
    "llama31": (LLAMA31, "<|begin_of_text|>"),
}

CONVERSATIONS = {
    "system_user": [
        {"role": "system", "content": "You are a terse assistant."},
        {"role": "user", "content": "Name a colour. "},
    ],
    "user_only": [{"role": "user", "content": "Hello!\nHow are you?"}],
    "multi_turn": [
        {"role": "system", "content": " Be kind. "},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "<think>\nThe user greets.\n</think>\n\nHello! How can I help?"},
        {"role": "user", "content": "Tell me a story."},
    ],
}


def main():
    check = "--check" in sys.argv[1:]
    differences = 0
    for name, (template, bos) in TEMPLATES.items():
        directory = os.path.join(HERE, name)
        os.makedirs(directory, exist_ok=True)
        config = {"chat_template": template}
        if bos:
            config["bos_token"] = bos
        files = {"tokenizer_config.json": json.dumps(config, indent=2) + "\n"}
        for conversation, messages in CONVERSATIONS.items():
            rendered, _ = render_jinja_template(
                conversations=[messages], chat_template=template, add_generation_prompt=True,
                bos_token=bos or "", eos_token="")
            files[conversation + ".txt"] = rendered[0]
        for file, text in files.items():
            path = os.path.join(directory, file)
            if check:
                with open(path, encoding="utf-8", newline="") as f:
                    if f.read() != text:
                        print("differs:", path)
                        differences += 1
            else:
                with open(path, "w", encoding="utf-8", newline="") as f:
                    f.write(text)
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main())
