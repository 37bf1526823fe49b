#!/usr/bin/env python3
"""Golden renderings of real chat templates by transformers, for our Jinja interpreter.

    /opt/ref/bin/python scripts/make_chat_template_fixtures.py [--templates DIR]
Needs: transformers (its render_jinja_template: jinja2 with trim_blocks, lstrip_blocks, loop controls,
raise_exception, tojson, strftime_now). Reads Tests/Fixtures/templates/*.jinja (published chat templates; their
sources in SOURCES.md) and renders each with a set of conversations (with and without a system message, multi-turn,
a generation prompt, an ending assistant turn, tools with tool calls and tool results, non-ASCII text), bos "<s>",
eos "</s>", a fixed date_string and a fixed date for strftime_now (2026-12-02, see FIXED_NOW). Writes
Tests/Fixtures/templates/golden.json: for every template and case the exact text, or the error message the template
raises.
"""
import argparse
import datetime
import glob
import json
import os

import transformers.utils.chat_template_utils as chat_template_utils
from transformers.utils.chat_template_utils import _compile_jinja_template, render_jinja_template

# strftime_now is transformers' datetime.now().strftime(format): the day of rendering would end up in golden.json
# (granite-3.3 writes "Today's Date: December 02, 2026"). The date is fixed at 2026-12-02, the day the committed
# golden.json was rendered, so fixtures and tests agree: ChatTemplateGoldenTests renders with the same moment
# (RenderOptions fixtureDate, 2026-12-02 12:00 UTC). Change both together. transformers' own tests fix the date too.
FIXED_NOW = datetime.datetime(2026, 12, 2, 12, 0, 0)


class _FixedDatetime(datetime.datetime):
    @classmethod
    def now(cls, tz=None):
        return FIXED_NOW if tz is None else FIXED_NOW.replace(tzinfo=datetime.timezone.utc).astimezone(tz)


# chat_template_utils does `from datetime import datetime` and its strftime_now looks the name up when called.
assert isinstance(getattr(chat_template_utils, "datetime", None), type), "transformers' strftime_now moved; fix the date another way"
chat_template_utils.datetime = _FixedDatetime

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FIX = os.path.join(ROOT, "Tests", "Fixtures", "templates")

TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather in a city.",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "description": "City name, e.g. 北京"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["city"]}}}]

CASES = {
    "user": [{"role": "user", "content": "你好，请介绍一下六味地黄丸。"}],
    "system-user": [{"role": "system", "content": "You are a careful assistant."},
                    {"role": "user", "content": "Hello \"there\"! It's 2026."}],
    "multi-turn": [{"role": "system", "content": "Answer briefly."},
                   {"role": "user", "content": "What is 2+2?"},
                   {"role": "assistant", "content": "4"},
                   {"role": "user", "content": "And 3+3?\nExplain."}],
    "ends-with-assistant": [{"role": "user", "content": "Say hi."},
                            {"role": "assistant", "content": "  Hi!  "}],
    "no-system-multi": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                        {"role": "user", "content": "c"}, {"role": "assistant", "content": "d"}],
    "tool-calls": [{"role": "user", "content": "Weather in 北京?"},
                   {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "id": "call_1",
                    "function": {"name": "get_weather", "arguments": {"city": "北京", "unit": "celsius"}}}]},
                   {"role": "tool", "name": "get_weather", "tool_call_id": "call_1", "content": "{\"temperature\": 21}"},
                   {"role": "assistant", "content": "It is 21°C in 北京."}],
}


# Snippets exercising one feature each, rendered in the same environment (features.json).
FEATURES = [
    ("whitespace", "a  {%- if true %}  b  {% endif -%}  c\n  {% if x %}\n  yes\n  {% endif %}\nend\n", {"x": 1}),
    ("trim-lstrip", "{% for i in range(3) %}\n    {{ i }}\n{% endfor %}\n", {}),
    ("loop-vars", "{% for x in xs %}{{ loop.index }}/{{ loop.length }}{{ '!' if loop.last }}{{ loop.previtem }},{% endfor %}", {"xs": ["a", "b", "c"]}),
    ("loop-filter-else", "{% for x in xs if x > 1 %}{{ x }}{% else %}none{% endfor %}|{% for y in [] %}{% else %}empty{% endfor %}", {"xs": [1, 2, 3]}),
    ("break-continue", "{% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}{% if x > 4 %}{% break %}{% endif %}{{ x }}{% endfor %}", {}),
    ("scoping", "{% set a = 1 %}{% for x in [1] %}{% set a = 2 %}{% endfor %}{{ a }}{% set ns = namespace(b=1) %}{% for x in [1] %}{% set ns.b = 3 %}{% endfor %}{{ ns.b }}", {}),
    ("macro", "{% macro m(a, b='B') %}[{{ a }}{{ b }}]{% endmacro %}{{ m(1) }}{{ m(2, b='x') }}", {}),
    ("tojson", "{{ d | tojson }}|{{ d | tojson(indent=2) }}|{{ 'é\"' | tojson }}|{{ [1, 2.5, none, true] | tojson }}", {"d": {"b": 1, "a": [1, {"c": "中"}]}}),
    ("filters", "{{ '  x  ' | trim }}|{{ xs | length }}|{{ xs | join('-') }}|{{ xs | first }}{{ xs | last }}|{{ 'aBc' | upper }}{{ 'aBc' | lower }}|{{ xs | reverse | list }}|{{ 'hello world' | title }}|{{ none | default('d') }}|{{ 3.7 | int }}|{{ xs | map('upper') | join }}", {"xs": ["a", "b", "c"]}),
    ("selectattr", "{{ ms | selectattr('role', 'equalto', 'user') | map(attribute='content') | join(',') }}|{{ ms | rejectattr('role', 'eq', 'user') | list | length }}", {"ms": [{"role": "user", "content": "u1"}, {"role": "assistant", "content": "a"}, {"role": "user", "content": "u2"}]}),
    ("string-methods", "{{ s.strip() }}|{{ s.split('/') }}|{{ s.startswith(' a') }}|{{ s.replace('b', 'X') }}|{{ s.rstrip(' c') }}|{{ s.split('/', 1)[1] }}|{{ s[1:3] }}|{{ s[::-1] }}|{{ s.lstrip().upper() }}", {"s": " a/b/c "}),
    ("dict-methods", "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}{{ d.keys() | list }}{{ d.get('z', 'none') }}{{ d['a'] }}{{ d.a }}", {"d": {"a": 1, "b": 2}}),
    ("tests", "{{ x is defined }}{{ y is defined }}{{ x is string }}{{ 3 is odd }}{{ n is none }}{{ xs is iterable }}{{ d is mapping }}{{ 4 is divisibleby 2 }}{{ x is not none }}", {"x": "s", "n": None, "xs": [1], "d": {}}),
    ("operators", "{{ 7 // 2 }}{{ 7 % 3 }}{{ 2 ** 3 }}{{ 1 + 2 * 3 }}{{ 'a' ~ 1 }}{{ 'b' in 'abc' }}{{ 3 not in [1, 2] }}{{ not true or false }}{{ 1 if false else 2 }}{{ 10 / 4 }}{{ -3 }}", {}),
    ("printing", "{{ none }}|{{ true }}|{{ [1, 'a', none] }}|{{ {'k': 'v'} }}|{{ 1.0 }}|{{ 2.50 }}|{{ undefined_thing }}|{{ \"it's\" }}", {}),
    ("raise", "{% if x %}{{ raise_exception('bad: ' + x) }}{% endif %}", {"x": "no system role"}),
    ("comments", "a{# comment #}b\n{# line comment #}\nc{#- trimmed -#}  d", {}),
    ("set-block-and-ternary", "{% set t %}[{{ 1 + 1 }}]{% endset %}{{ t }}{{ 'yes' if t else 'no' }}", {}),
]


def render(template, messages, tools, generation):
    try:
        text = render_jinja_template(conversations=[messages], tools=tools, chat_template=template,
                                     add_generation_prompt=generation, bos_token="<s>", eos_token="</s>",
                                     date_string="26 Jul 2024")
        while isinstance(text, (list, tuple)):   # (renderings, generation indices) -> the one rendering
            text = text[0]
        return {"expected": text}
    except Exception as e:  # the template's raise_exception, or jinja2's own errors
        return {"error": str(e)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--templates", default=FIX)
    args = ap.parse_args()
    out = []
    for path in sorted(glob.glob(os.path.join(args.templates, "*.jinja"))):
        name = os.path.basename(path)[:-len(".jinja")]
        template = open(path, encoding="utf-8").read()
        for case, messages in CASES.items():
            tool_lists = [None, TOOLS] if case in ("user", "tool-calls", "system-user") else [None]
            for tools in tool_lists:
                for generation in ([False, True] if messages[-1]["role"] == "user" else [False]):
                    entry = {"template": name, "case": case, "messages": messages, "tools": tools,
                             "add_generation_prompt": generation}
                    entry.update(render(template, messages, tools, generation))
                    out.append(entry)
    json.dump(out, open(os.path.join(FIX, "golden.json"), "w", encoding="utf-8"), ensure_ascii=False, indent=1)
    features = []
    for name, template, variables in FEATURES:
        entry = {"name": name, "template": template, "variables": variables}
        try:
            entry["expected"] = _compile_jinja_template(template).render(**variables)
        except Exception as e:
            entry["error"] = str(e)
        features.append(entry)
    json.dump(features, open(os.path.join(FIX, "features.json"), "w", encoding="utf-8"), ensure_ascii=False, indent=1)
    print("wrote", len(out), "renderings of", len({e["template"] for e in out}), "templates")


if __name__ == "__main__":
    main()
