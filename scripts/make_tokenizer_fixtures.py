#!/usr/bin/env python3
"""Builds the golden tokenizer fixtures in Tests/TokenizerTests/Fixtures.

Tiny byte-level BPE tokenizers are trained with Hugging Face `tokenizers` on the mixed text below and saved in
several tokenizer.json flavours (Qwen2-style Split+ByteLevel, the same with legacy "a b" merges, Llama-3 style with
ignore_merges and a BOS template, GPT-2 style ByteLevel regex with a prefix space, and a custom Split regex with NFKC).
A `qwen.tiktoken` rank file (and GLM-4's, named tokenizer.model) is derived from the Qwen2-style vocabulary; their
expected ids come from `tiktoken`.
Expected ids are `tokenizer.encode(text).ids`, decoded strings are `tokenizer.decode(ids, skip_special_tokens=False)`.
When ../shared/qwen-tokenizer (or $PEFT_QWEN_TOKENIZER_DIR) exists, golden ids for the real Qwen vocabulary are written too.

Usage (from the package root): python3 scripts/make_tokenizer_fixtures.py
Needs: tokenizers, tiktoken (pip). Nothing here runs during `swift test`.
"""
import base64
import json
import os
import sys
from pathlib import Path

import tokenizers
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "Tests" / "TokenizerTests" / "Fixtures"

QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                 r"|\s*[\r\n]+|\s+(?!\S)|\s+")
LLAMA3_PATTERN = QWEN2_PATTERN.replace(r"|\p{N}|", r"|\p{N}{1,3}|")
CUSTOM_PATTERN = r"[A-Za-z]+|[0-9]+|\s+|[^A-Za-z0-9\s]"

CORPUS = """
问：六味地黄丸的功效是什么？答：六味地黄丸具有滋阴补肾的功效，用于肾阴亏损，头晕耳鸣，腰膝酸软，骨蒸潮热，盗汗遗精。
问：感冒清热颗粒怎么吃？答：开水冲服，一次1袋，一日2次。服药期间忌烟、酒及辛辣、生冷、油腻食物。
问：板蓝根颗粒可以长期服用吗？答：不建议长期服用。板蓝根性寒，脾胃虚寒者慎用，如症状无改善应去医院就诊。
问：藿香正气水有什么作用？答：解表化湿，理气和中。用于外感风寒、内伤湿滞或夏伤暑湿所致的感冒。
问：连花清瘟胶囊的用法用量？答：口服，一次4粒，一日3次。孕妇禁用，儿童、哺乳期妇女应在医师指导下服用。
问：复方丹参滴丸适用于哪些人？答：用于气滞血瘀所致的胸痹，症见胸闷、心前区刺痛；冠心病心绞痛见上述证候者。
The quick brown fox jumps over the lazy dog. It's a well-known pangram, isn't it? We'll see; they've said so.
Machine learning models are trained on large datasets. Tokenizers split text into subword units before training.
Fine-tuning with LoRA adds low-rank matrices to the attention projections while the base weights stay frozen.
def train(model, data, epochs=3):
    for epoch in range(epochs):
        loss = model.step(data)  # returns the mean loss
        print(f"epoch {epoch}: loss={loss:.4f}")
    return model
let tokens = tokenizer.encode("Hello, world!") // [9707, 11, 1879, 0]
if (x >= 10 && y != 0) { return x / y; } else { return -1; }
Numbers: 3.14159, 2718281828, 1,000,000 and 0x7FFF_FFFF; dates like 2024-05-17 or 17/05/2024.
Emoji 😀🎉👍 and symbols © ® ™ € £ ¥ → ← ≤ ≥ ∞ ✓; tabs\tand  double  spaces.
日本語のテキストも少し含めます。한국어 문장도 조금 있습니다. Ünïcödé àccents ñ ç ø å.
"""

CHINESE_QA = ("问：我最近总是失眠多梦，可以吃什么中成药？答：可以考虑天王补心丹或柏子养心丸，"
              "具体请在医生指导下服用，并注意作息规律。")
TEXTS = [
    "",
    CHINESE_QA,
    "问：小儿感冒退热颗粒一次吃几袋？答：一岁以内一次半袋，一至三岁一次一袋，一日三次。",
    "六味地黄丸滋阴补肾头晕耳鸣腰膝酸软骨蒸潮热盗汗遗精" * 3,
    "The quick brown fox jumps over the lazy dog.",
    "Hello world! Tokenizers are fun; aren't they?",
    "I'm sure you'RE right, DON'T worry, they'll come, we'Ve seen it, she'd know, it'S 'ſ ok.",
    "def f(x):\n    return x ** 2  # square\n\n\nprint(f(3))\n",
    "for (int i = 0; i < n; ++i) {\n\tsum += a[i];\n}\n",
    "   leading spaces",
    "trailing spaces   ",
    "multiple   inner    spaces and\ttabs\t\there",
    "\n\n\nnewlines\n\nand\r\nwindows\rline endings\n",
    "  \n  indented after newline\n\t\n",
    " ",
    "\t",
    "12345678901234567890 and 3.14159 and 1,000,000 and ١٢٣٤ and ½ ⅔ Ⅻ",
    "Emoji: 😀🎉👍🏽 🇨🇳 👨‍👩‍👧 ❤️",
    "Qwen2.5-7B 模型支持 128K tokens！混合 English 和中文，还有 code: `x += 1`。",
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n你好<|im_end|>\n<|im_start|>assistant\n",
    "text<|endoftext|>more<|im_end|><|im_end|> and a broken <|im_start tag",
    "fullwidth ＡＢＣ１２３ and ligature ﬁ and e\u0301 combining",
    "Ünïcödé àccents ñ ç ø å — “quotes” ‘single’ «guillemets»",
    "日本語のテキストと한국어 문장, हिन्दी पाठ, العربية, ไทย",
    "nbsp\u00a0here, ideographic\u3000space, line\u2028separator, nel\u0085next, vt\x0bff\x0c.",
    "control \x00\x01\x7f chars and 𠀀𠀁 extension B",
    "!!!???...;;; ---> <== ~~~ @@@ ### $$$ %%% ^^^ &&& ***",
    "a" * 40 + " " + "ab" * 30,
    "问：" + "，".join(["头痛", "发热", "咳嗽", "乏力"]) + "怎么办？\n答：多喝水，注意休息。\n\n",
    "Mixed中English文and数字123混合456test",
    "<think>\nreasoning here\n</think>\n\nanswer",
    "added tokens: a [MASK] b,  [MASK]  x, a[MASK]b, x<think>y</think>z",
    "single word: fox foxes afox _fox ｆｏｘ fox! (fox)",
    "edges: \n \n a\n\n b \u3000x \r\n\r\n \t\n  end\n  ",
    "<s>Hello</s> <s> spaced <unk> and <0x41> literal",
    "unknown: 鳄鱼🦀 and 𠀀 fall back to bytes",
]

QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
LLAMA_SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
QWEN15_TEMPLATE = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
                   "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
                   "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
                   "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
LLAMA3_TEMPLATE = ("{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + "
                   "'<|end_header_id|>\n\n' + message['content'] + '<|eot_id|>' }}{% endfor %}"
                   "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")


def train(pre_tokenizer, vocab_size=900, ignore_merges=False):
    tok = Tokenizer(models.BPE(ignore_merges=ignore_merges))
    tok.pre_tokenizer = pre_tokenizer
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(CORPUS.strip().split("\n") * 3, trainer)
    tok.decoder = decoders.ByteLevel()
    return tok


def qwen2_split():
    return pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])


def save(tok, name, config, legacy_merges=False):
    folder = OUT / name
    folder.mkdir(parents=True, exist_ok=True)
    data = json.loads(tok.to_str())
    if legacy_merges:
        data["model"]["merges"] = [" ".join(pair) for pair in data["model"]["merges"]]
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    (folder / "tokenizer.json").write_text(text, encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps(config, ensure_ascii=False, indent=1), encoding="utf-8")
    reloaded = Tokenizer.from_file(str(folder / "tokenizer.json"))
    write_expected(reloaded, name)
    return reloaded


def write_expected(tok, name):
    cases = []
    for text in TEXTS:
        ids = tok.encode(text).ids
        cases.append({"text": text, "ids": ids, "decoded": tok.decode(ids, skip_special_tokens=False),
                      "decodedSkippingSpecial": tok.decode(ids, skip_special_tokens=True)})
    (OUT / name / "expected.json").write_text(json.dumps(cases, ensure_ascii=False, indent=0), encoding="utf-8")


def make_qwen2():
    tok = train(qwen2_split())
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in QWEN_SPECIALS])
    # Qwen3-style non-special added tokens, plus one with lstrip/rstrip to exercise stripping.
    tok.add_tokens([AddedToken("<think>", special=False, normalized=False),
                    AddedToken("</think>", special=False, normalized=False),
                    AddedToken("[MASK]", special=True, normalized=False, lstrip=True, rstrip=True)])
    config = {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "chat_template": QWEN15_TEMPLATE,
              "model_max_length": 32768}
    save(tok, "qwen2-style", config)
    save(tok, "qwen2-legacy-merges", config, legacy_merges=True)
    return tok


def make_llama3():
    split = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])
    tok = train(split, ignore_merges=True)
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in LLAMA_SPECIALS])
    bos = LLAMA_SPECIALS[0]
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(add_prefix_space=True, trim_offsets=False, use_regex=True),
        processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos} $B",
                                      special_tokens=[(bos, tok.token_to_id(bos))]),
    ])
    config = {"bos_token": bos, "eos_token": "<|eot_id|>", "chat_template": LLAMA3_TEMPLATE}
    save(tok, "llama3-style", config)
    return tok


def make_gpt2():
    tok = train(pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True))
    tok.add_special_tokens([AddedToken("<|endoftext|>", special=True, normalized=False)])
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    save(tok, "gpt2-style", {"eos_token": "<|endoftext|>", "bos_token": "<|endoftext|>"})


def make_custom_regex():
    split = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(CUSTOM_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok = train(split)
    tok.normalizer = normalizers.Sequence([normalizers.NFKC()])
    tok.add_special_tokens([AddedToken("<|endoftext|>", special=True, normalized=False)])
    tok.add_tokens([AddedToken("fox", single_word=True, normalized=True, special=False)])
    save(tok, "custom-regex-nfkc", {"eos_token": "<|endoftext|>"})


def make_sentencepiece_style():
    """Llama-2 / Mistral style: `▁` for spaces, byte_fallback `<0xXX>` tokens, `<unk>` fused, BOS template."""
    byte_tokens = [f"<0x{b:02X}>" for b in range(256)]
    specials = ["<unk>", "<s>", "</s>"]
    metaspace = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=True)
    for name in ("llama2-style", "metaspace-style"):
        tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
        tok.pre_tokenizer = metaspace
        trainer = trainers.BpeTrainer(vocab_size=1000, special_tokens=specials + byte_tokens, show_progress=False)
        tok.train_from_iterator(CORPUS.strip().split("\n") * 3, trainer)
        if name == "llama2-style":  # the legacy layout of Llama-2's tokenizer.json
            tok.pre_tokenizer = None
            tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
            tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                             decoders.Strip(" ", 1, 0)])
        else:
            tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first", split=True)
        tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                           special_tokens=[("<s>", tok.token_to_id("<s>"))])
        data = json.loads(tok.to_str())
        # Byte tokens are ordinary vocabulary entries in Llama-2, not added tokens.
        data["added_tokens"] = [t for t in data["added_tokens"] if t["content"] in specials]
        folder = OUT / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "tokenizer.json").write_text(json.dumps(data, ensure_ascii=False, separators=(",", ":")),
                                              encoding="utf-8")
        config = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "add_bos_token": True}
        (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=1), encoding="utf-8")
        write_expected(Tokenizer.from_file(str(folder / "tokenizer.json")), name)


def make_tiktoken(qwen_tok):
    """A Qwen v1 style rank file from the Qwen2-style vocabulary (ids in order are valid BPE ranks)."""
    import tiktoken
    byte_decoder = {c: b for b, c in bytes_to_unicode().items()}
    vocab = json.loads(qwen_tok.to_str())["model"]["vocab"]
    ranks = {bytes(byte_decoder[c] for c in token): rank for token, rank in vocab.items()}
    specials = {t: len(ranks) + i for i, t in enumerate(QWEN_SPECIALS + [f"<|extra_{i}|>" for i in range(205)])}
    enc = tiktoken.Encoding("tiny-qwen", pat_str=QWEN2_PATTERN, mergeable_ranks=ranks, special_tokens=specials)
    folder = OUT / "qwen-tiktoken"
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"{base64.b64encode(token).decode()} {rank}" for token, rank in sorted(ranks.items(), key=lambda x: x[1])]
    (folder / "qwen.tiktoken").write_text("\n".join(lines) + "\n", encoding="utf-8")
    cases = []
    for text in TEXTS:
        ids = enc.encode(text, allowed_special="all")
        cases.append({"text": text, "ids": ids, "decoded": enc.decode(ids)})
    (folder / "expected.json").write_text(json.dumps(cases, ensure_ascii=False, indent=0), encoding="utf-8")


GLM4_SPECIALS = ["<|endoftext|>", "[MASK]", "[gMASK]", "[sMASK]", "<sop>", "<eop>", "<|system|>", "<|user|>",
                 "<|assistant|>", "<|observation|>", "<|begin_of_image|>", "<|end_of_image|>", "<|begin_of_video|>",
                 "<|end_of_video|>"]


def make_glm4_tiktoken(qwen_tok):
    """GLM-4's remote-code tokenizer (ChatGLM4Tokenizer): the same ranks as qwen-tiktoken in a file named
    tokenizer.model, Llama-3's split, its 14 special tokens after the ranks. Expected ids are what ChatGLM4Tokenizer
    gives with add_special_tokens (its [gMASK] <sop> prefix, then tiktoken's ids with special tokens parsed)."""
    import tiktoken
    byte_decoder = {c: b for b, c in bytes_to_unicode().items()}
    vocab = json.loads(qwen_tok.to_str())["model"]["vocab"]
    ranks = {bytes(byte_decoder[c] for c in token): rank for token, rank in vocab.items()}
    specials = {t: len(ranks) + i for i, t in enumerate(GLM4_SPECIALS)}
    enc = tiktoken.Encoding("tiny-glm4", pat_str=LLAMA3_PATTERN, mergeable_ranks=ranks, special_tokens=specials)
    folder = OUT / "glm4-tiktoken"
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"{base64.b64encode(token).decode()} {rank}" for token, rank in sorted(ranks.items(), key=lambda x: x[1])]
    (folder / "tokenizer.model").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "ChatGLM4Tokenizer",
                                                              "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>"}, indent=1))
    prefix = [specials["[gMASK]"], specials["<sop>"]]
    cases = []
    for text in TEXTS + ["[gMASK]<sop><|user|>\n你好<|assistant|>"]:
        ids = enc.encode(text, allowed_special="all")
        cases.append({"text": text, "ids": prefix + ids, "decoded": enc.decode(prefix + ids)})
    (folder / "expected.json").write_text(json.dumps(cases, ensure_ascii=False, indent=0), encoding="utf-8")


def bytes_to_unicode():
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    table, extra = {}, 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def chat_parts(template, messages, eot, bos=None, default_system=None):
    """Segments exactly as ChatFormatter renders them: (text or id, trainable)."""
    parts, pending = ([(bos, False)] if bos is not None else []), ""
    if template == "chatml" and default_system and messages[0]["role"] != "system":
        pending += f"<|im_start|>system\n{default_system}<|im_end|>\n"
    for m in messages:
        role, content = m["role"], m["content"]
        if role == "assistant":
            header = {"chatml": "<|im_start|>assistant\n",
                      "llama3": "<|start_header_id|>assistant<|end_header_id|>\n\n",
                      "plain": "Answer: ", "none": ""}[template]
            parts += [(pending + header, False), (content, True), (eot, True)]
            pending = "\n" if template == "chatml" else ""
        elif template == "chatml":
            pending += f"<|im_start|>{role}\n{content}<|im_end|>\n"
        elif template == "llama3":
            pending += f"<|start_header_id|>{role}<|end_header_id|>\n\n{content}<|eot_id|>"
        elif template == "plain":
            pending += f"{content}\n" if role == "system" else f"Instruction: {content}\n"
        else:
            pending += content
    return parts


def encode_parts(tok, parts):
    ids, trainable = [], []
    for value, train_flag in parts:
        piece = [value] if isinstance(value, int) else tok.encode(value, add_special_tokens=False).ids
        ids += piece
        trainable += [train_flag] * len(piece)
    return ids, trainable


def make_chat(qwen_tok, llama_tok):
    single = [{"role": "user", "content": "六味地黄丸的功效是什么？"},
              {"role": "assistant", "content": "滋阴补肾，用于头晕耳鸣。"}]
    multi = [{"role": "system", "content": "You are a pharmacist."},
             {"role": "user", "content": "What is it for?"},
             {"role": "assistant", "content": "It nourishes yin."},
             {"role": "user", "content": "剂量？"},
             {"role": "assistant", "content": "一次8丸，一日3次。"}]
    im_end, eos_qwen = qwen_tok.token_to_id("<|im_end|>"), qwen_tok.token_to_id("<|im_end|>")
    eot_llama, bos_llama = llama_tok.token_to_id("<|eot_id|>"), llama_tok.token_to_id("<|begin_of_text|>")
    cases = []
    specs = [
        ("chatml-default-system", "qwen2-style", "chatml", single, im_end, None, "You are a helpful assistant."),
        ("chatml-multi-turn", "qwen2-style", "chatml", multi, im_end, None, "You are a helpful assistant."),
        ("llama3-single", "llama3-style", "llama3", single, eot_llama, bos_llama, None),
        ("llama3-multi-turn", "llama3-style", "llama3", multi, eot_llama, bos_llama, None),
        ("plain-single", "qwen2-style", "plain", single, eos_qwen, None, None),
        ("plain-multi-turn", "qwen2-style", "plain", multi, eos_qwen, None, None),
        ("plain-with-input", "qwen2-style", "plain",
         [{"role": "user", "content": "Translate to English.\n板蓝根颗粒"},
          {"role": "assistant", "content": "Isatis root granules"}], eos_qwen, None, None),
        ("none-single", "qwen2-style", "none", single, eos_qwen, None, None),
    ]
    for name, fixture, template, messages, eot, bos, default_system in specs:
        tok = qwen_tok if fixture == "qwen2-style" else llama_tok
        ids, trainable = encode_parts(tok, chat_parts(template, messages, eot, bos, default_system))
        prompt_ids, _ = encode_parts(tok, chat_parts(template, messages[:-1] + [{"role": "assistant", "content": ""}],
                                                     eot, bos, default_system)[:-2])
        cases.append({"name": name, "fixture": fixture, "template": template, "messages": messages,
                      "ids": ids, "trainable": trainable, "promptIDs": prompt_ids})
    check_chatml_matches_jinja(qwen_tok, multi)
    (OUT / "chat-expected.json").write_text(json.dumps(cases, ensure_ascii=False, indent=0), encoding="utf-8")


def check_chatml_matches_jinja(tok, messages):
    """The chatml rendering must equal the Qwen1.5 jinja template's text (plus the trailing newline)."""
    import jinja2
    rendered = jinja2.Template(QWEN15_TEMPLATE).render(messages=messages, add_generation_prompt=False)
    parts = chat_parts("chatml", messages, "<|im_end|>", None, "You are a helpful assistant.")
    ours = "".join(p for p, _ in parts) + "\n"
    assert ours == rendered, (ours, rendered)


REAL_TEXTS = TEXTS[1:] + [
    "问：连花清瘟胶囊能治疗新冠吗？答：连花清瘟胶囊可用于治疗流行性感冒属热毒袭肺证，具体请遵医嘱。",
    "Qwen is a large language model developed by Alibaba Cloud. 通义千问是阿里云研发的大语言模型。",
    "import torch\nfrom transformers import AutoModelForCausalLM\nmodel = AutoModelForCausalLM.from_pretrained('Qwen/Qwen2.5-0.5B')\n",
]


def make_real_qwen():
    folder = Path(os.environ.get("PEFT_QWEN_TOKENIZER_DIR", ROOT.parent / "shared" / "qwen-tokenizer"))
    path = folder / "tokenizer.json"
    if not path.exists():
        print(f"skipping real Qwen golden ids: {path} not found", file=sys.stderr)
        return
    import jinja2
    tok = Tokenizer.from_file(str(path))
    cases = [{"text": t, "ids": tok.encode(t).ids, "decoded": tok.decode(tok.encode(t).ids, skip_special_tokens=False)}
             for t in REAL_TEXTS]
    # Generation prompts rendered by the directory's own chat template, then encoded whole.
    template = jinja2.Template((folder / "chat_template.jinja").read_text(encoding="utf-8"))
    conversations = [
        [{"role": "user", "content": "六味地黄丸的功效是什么？"}],
        [{"role": "system", "content": "你是一名药师。"}, {"role": "user", "content": "板蓝根颗粒可以长期服用吗？"},
         {"role": "assistant", "content": "不建议长期服用。"}, {"role": "user", "content": "Why not?"}],
    ]
    prompts = [{"messages": m, "ids": tok.encode(template.render(messages=m, add_generation_prompt=True)).ids}
               for m in conversations]
    real = {"encodings": cases, "chatPrompts": prompts}
    (OUT / "qwen-real-expected.json").write_text(json.dumps(real, ensure_ascii=False, indent=0), encoding="utf-8")


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    qwen = make_qwen2()
    llama = make_llama3()
    make_gpt2()
    make_custom_regex()
    make_sentencepiece_style()
    make_tiktoken(qwen)
    make_glm4_tiktoken(qwen)
    make_chat(qwen, llama)
    make_real_qwen()
    print(f"fixtures written to {OUT} with tokenizers {tokenizers.__version__}")


if __name__ == "__main__":
    main()
