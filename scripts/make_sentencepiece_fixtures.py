#!/usr/bin/env python3
"""Builds the tokenizer fixtures in Tests/Fixtures/tokenizers: SentencePiece BPE models and byte-level BPE models for
every pre-tokenizer kind llama.cpp names in `tokenizer.ggml.pre`, each with the token ids Hugging Face gives for the
same few thousand texts.

SentencePiece (`sp-*`): tiny BPE models trained with `sentencepiece.SentencePieceTrainer` (byte fallback on,
identity normalization as Llama's) on a mixed Chinese/English/code corpus. For each: `tokenizer.model`, a GGUF
holding only the tokenizer metadata llama.cpp's converter writes for it (`tokenizer.ggml.model` "llama": tokens,
scores, token types, special ids, add_bos / add_eos / add_space_prefix), and `expected.json` with, per text,
transformers' `LlamaTokenizer` ids in legacy mode (`legacy=True`: the dummy prefix before every piece of text between
special tokens, what llama.cpp does) and non-legacy mode (the default), sentencepiece's own ids, and the legacy decode.

Byte-level BPE (`bpe-<kind>`): for each pre-tokenizer kind (several llama.cpp names share one), a BPE trained with
Hugging Face `tokenizers` whose pre-tokenizer is that kind's split regexes (a `Split` per regex, `Isolated`, then
`ByteLevel`), saved as a GGUF the way llama.cpp's converter writes a `gpt2` vocabulary, and `expected.json` with
`tokenizer.encode(text).ids` and the decode. The kinds and regexes mirror `GGUFPreTokenizer.swift`, including the
kinds llama.cpp splits with custom code: kimi-k2 (the tiktoken `pat_str` of Kimi K2, whose classes intersect with
`&&[^\p{Han}]`), afmoe (a run of digits cut as its leading len % 3 digits then threes, written here as a regex, then
Asian scripts, then DeepSeek V3's main regex). Two kinds have raw UTF-8 vocabularies rather than byte-level ones:
gemma4 (`tokenizer.ggml.model` "gemma4": spaces normalized to "▁", text cut at newline runs, BPE with `<0xXX>` byte
fallback, newline runs as user-defined added tokens, BOS always added) and whitespace (`tokenizer.ggml.model`
"whitespace": Hugging Face's `Whitespace` pre-tokenizer, no byte fallback, so unknown characters vanish). When
llama.cpp's Python bindings are importable, every such fixture is also tokenized by llama.cpp and the script reports
the texts whose ids differ from Hugging Face's.

Gemma layout (`sp-gemma`): a SentencePiece model with Gemma's settings turned into the tokenizer.json that
transformers' GemmaTokenizer builds (the layout of Gemma 2 / 3 checkpoints: Replace(" ", "▁"), BPE with byte fallback,
<bos> prepended), with transformers' ids.

GPT-NeoX layout (`bpe-neox`, OLMoE's vocabulary kind): NFC, ByteLevel without a prefix space, OLMoE's added tokens,
with the ids transformers' GPTNeoXTokenizer gives.

Usage (from the package root): python3 scripts/make_sentencepiece_fixtures.py [--only-layouts]
Needs: sentencepiece, protobuf, tokenizers, transformers, and the `gguf` package (llama.cpp's gguf-py). The output is
deterministic for the versions named in Tests/Fixtures/README.md. Nothing here runs during `swift test`.
"""
import json
import os
import random
import shutil
import sys
import tempfile
from pathlib import Path

import sentencepiece as spm
import tokenizers
import transformers
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

try:
    import gguf
except ImportError:
    sys.path.insert(0, "/opt/llama/lib/python3.11/site-packages")
    import gguf

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "Tests" / "Fixtures" / "tokenizers"

ENGLISH = ("the quick brown fox jumps over lazy dog model training data token merge score vocabulary fine tune "
           "adapter weight layer attention Hello World It's isn't we'll they've I'm you'd CAN'T SHE'LL "
           "running tokenizer SentencePiece LLaMA Mistral GPU CPU").split()
CHINESE = ("你好 世界 我们 中文 分词 模型 训练 数据 六味地黄丸 滋阴补肾 感冒 清热 颗粒 问 答 的 是 在 了 和 有 "
           "人工智能 机器学习 自然语言处理 北京 上海 服用 一日三次").split()
CODE = ["def f(x):", "return x + 1", "for i in range(10):", "if (a >= b && c != d) {", "}", "let y = [1, 2, 3];",
        "print(f\"{k}={v}\")", "x->y", "a::b", "/* comment */", "// TODO", "#include <stdio.h>", "SELECT * FROM t;",
        "foo_bar_baz", "__init__", "0x7FFF", "i++", "<div class=\"a\">", "$HOME/.cache", "'s 'T 'Re 'vE 'm 'LL 'd"]
WHITESPACE = [" ", "  ", "   ", "    ", "\t", "\t\t", "\n", "\n\n", "\r\n", " \n ", "\u3000", "\u00a0", "\v", "\f",
              "\u0085", "\u2028", " \t \n"]
DIGITS = ["0", "7", "42", "123", "2024", "12345", "1234567", "3.14159", "1,000,000", "٣٤", "１２３", "Ⅻ", "½"]
EMOJI = ["😀", "🎉", "👍", "🦙🦙", "😶\u200d🌫️", "👩\u200d💻", "🇨🇳", "✅", "🚀", "❤️"]
RARE = ["\x01", "\x7f", "\x1f", "é", "e\u0301", "ſ", "\u212a", "ß", "Ω", "ﬁ", "\ue000", "𠀀", "𝔘𝔫𝔦", "ا", "ب", "नमस्ते",
        "สวัสดี", "Привет", "Ελληνικά", "한국어", "日本語", "ｶﾀｶﾅ", "…", "。", "，", "、", "।", "۔", "،", "—", "\u200b",
        "©", "™", "€", "→", "∞", "<sentinel:12>", "IMGIMGABZ", "‘quote’", "«»", "¿", "¡"]
SPECIAL = ["<s>", "</s>", "<unk>", "<|endoftext|>", "<|user|>", "[CODE]"]
POOLS = [ENGLISH, ENGLISH, CHINESE, CHINESE, CODE, WHITESPACE, DIGITS, EMOJI, RARE]


def make_texts(count, seed, specials):
    rng = random.Random(seed)
    texts = ["", " ", "  ", "\n", "Hello", " Hello", "Hello world", "你好，世界", "  leading and trailing  ",
             "a\n\nb", "\t\ttab", "3333333", "'s", "🦙", "\x01\x02", "▁", "▁▁x", "<0x41>"]
    chktxt = ("\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n🚀 (normal) 😶\u200d🌫️ (multiple emojis concatenated) ✅ "
              "🦙🦙 3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 កាន់តែពិសេសអាច😁 ?我想在apple工作1314151天～ "
              "------======= нещо на Български ''''''```````\"\"\"\"......!!!!!!?????? I've been 'told he's there, "
              "'RE you sure? 'M not sure I'll make it, 'D you like some tea? We'Ve a'lL")
    texts.append(chktxt)
    while len(texts) < count:
        parts = []
        for _ in range(rng.randint(1, 12)):
            pool = rng.choice(POOLS)
            parts.append(rng.choice(pool))
            if rng.random() < 0.6:
                parts.append(rng.choice([" ", " ", "", "\n", ", ", "。"]))
        if specials and rng.random() < 0.05:
            parts.insert(rng.randint(0, len(parts)), rng.choice(SPECIAL))
        texts.append("".join(parts))
    return texts


def corpus_lines(seed=7, count=3000):
    rng = random.Random(seed)
    lines = []
    for _ in range(count):
        words = []
        for _ in range(rng.randint(3, 20)):
            pool = rng.choice([ENGLISH, ENGLISH, ENGLISH, CHINESE, CHINESE, CODE, DIGITS, EMOJI])
            words.append(rng.choice(pool))
        sep = rng.choice([" ", " ", "", "  "])
        lines.append(sep.join(words))
    return lines


# ---------------------------------------------------------------- SentencePiece

SP_MODELS = {
    # Llama 2 / Mistral style: dummy prefix, spaces kept, byte fallback, two user-defined pieces.
    "sp-llama": dict(vocab_size=800, add_dummy_prefix=True, remove_extra_whitespaces=False,
                     user_defined_symbols=["<|user|>", "[CODE]"]),
    # No dummy prefix, extra whitespace removed (exercises both normalizer flags).
    "sp-plain": dict(vocab_size=500, add_dummy_prefix=False, remove_extra_whitespaces=True, user_defined_symbols=[]),
}


def train_sentencepiece(name, options, corpus, directory, **special_ids):
    """A BPE model trained in `directory`; `special_ids` (pad_id=0, bos_piece="<bos>", ...) renumber or rename the
    control pieces, as Gemma's model does."""
    # A relative prefix: the trainer spec stores it, and a temporary path would make the file differ run to run.
    here = os.getcwd()
    os.chdir(directory)
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus), model_prefix=name, model_type="bpe", vocab_size=options["vocab_size"],
        byte_fallback=True, normalization_rule_name="identity", character_coverage=0.995,
        add_dummy_prefix=options["add_dummy_prefix"], remove_extra_whitespaces=options["remove_extra_whitespaces"],
        split_digits=True, allow_whitespace_only_pieces=True, user_defined_symbols=options["user_defined_symbols"],
        num_threads=1, seed_sentencepiece_size=100000, input_sentence_size=0, shuffle_input_sentence=False,
        minloglevel=2, **special_ids)
    os.chdir(here)
    return directory / f"{name}.model"


def write_sentencepiece_gguf(model_path, out_path, add_space_prefix):
    """The tokenizer metadata llama.cpp's `_set_vocab_sentencepiece` writes (tokens, scores, types from the model)."""
    sp = spm.SentencePieceProcessor(model_file=str(model_path))
    tokens, scores, types = [], [], []
    for i in range(sp.vocab_size()):
        tokens.append(sp.id_to_piece(i).encode("utf-8"))
        scores.append(sp.get_score(i))
        if sp.is_unknown(i):
            types.append(gguf.TokenType.UNKNOWN)
        elif sp.is_control(i):
            types.append(gguf.TokenType.CONTROL)
        elif sp.is_unused(i):
            types.append(gguf.TokenType.UNUSED)
        elif sp.is_byte(i):
            types.append(gguf.TokenType.BYTE)
        elif sp.id_to_piece(i) in ("<|user|>", "[CODE]"):
            types.append(gguf.TokenType.USER_DEFINED)
        else:
            types.append(gguf.TokenType.NORMAL)
    with vocabulary_gguf(out_path, "llama", "default", tokens) as writer:
        writer.add_token_scores(scores)
        writer.add_token_types(types)
        writer.add_bos_token_id(sp.bos_id())
        writer.add_eos_token_id(sp.eos_id())
        writer.add_unk_token_id(sp.unk_id())
        writer.add_add_bos_token(True)
        writer.add_add_eos_token(False)
        writer.add_add_space_prefix(add_space_prefix)


def sentencepiece_fixtures(texts, corpus):
    for name, options in SP_MODELS.items():
        target = OUT / name
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        with tempfile.TemporaryDirectory() as work:
            model = train_sentencepiece(name, options, corpus, Path(work))
            shutil.copy(model, target / "tokenizer.model")
        write_sentencepiece_gguf(target / "tokenizer.model", target / "tokenizer.gguf", options["add_dummy_prefix"])
        sp = spm.SentencePieceProcessor(model_file=str(target / "tokenizer.model"))
        with tempfile.TemporaryDirectory() as work:
            shutil.copy(target / "tokenizer.model", Path(work) / "tokenizer.model")
            converted = transformers.LlamaTokenizer.from_pretrained(work, legacy=True)
            bare = transformers.LlamaTokenizer.from_pretrained(work, legacy=True)
        # transformers 5 converts a bare tokenizer.model to a Metaspace pre-tokenizer that adds no "▁" before text that
        # already starts with a space and ignores add_dummy_prefix / remove_extra_whitespaces; Llama 2's own
        # tokenizer.json (the layout "llama2" below) prepends "▁" to every piece of text as SentencePiece does.
        layout = converted.backend_tokenizer
        steps = [normalizers.Prepend("\u2581")] if options["add_dummy_prefix"] else []
        layout.normalizer = normalizers.Sequence(steps + [normalizers.Replace(" ", "\u2581")])
        layout.pre_tokenizer = None
        strip = [decoders.Strip(content=" ", left=1)] if options["add_dummy_prefix"] else []
        layout.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse()] + strip)
        bos = sp.bos_id()
        cases = []
        differ = {"llama2_vs_sentencepiece": 0, "transformers_vs_sentencepiece": 0, "texts_with_special_tokens": 0}
        for text in texts:
            ids_layout = [bos] + layout.encode(text, add_special_tokens=False).ids
            ids_sp = [bos] + sp.encode(text)
            ids_transformers = [bos] + bare.encode(text, add_special_tokens=False)
            if any(token in text for token in SPECIAL + options["user_defined_symbols"]):
                differ["texts_with_special_tokens"] += 1
            else:
                differ["llama2_vs_sentencepiece"] += ids_layout != ids_sp
                differ["transformers_vs_sentencepiece"] += ids_transformers != ids_sp
            if options["remove_extra_whitespaces"]:
                cases.append({"sentencepiece": ids_sp})  # no tokenizer.json layout removes extra whitespace
            else:
                cases.append({"llama2": ids_layout, "sentencepiece": ids_sp,
                              "decoded": layout.decode(ids_layout, skip_special_tokens=False)})
        print(f"{name}: {sp.vocab_size()} pieces; texts (without special tokens) whose ids differ: {differ}")
        dump(target / "expected.json", {"differ": differ, "cases": cases})


def gemma_layout_fixture(texts, corpus):
    """sp-gemma: the tokenizer.json layout of Gemma 2 / Gemma 3 checkpoints, as transformers' GemmaTokenizer builds it
    from a SentencePiece model with Gemma's settings (no dummy prefix, spaces kept, digits split, byte fallback; ids
    <pad> 0, <eos> 1, <bos> 2, <unk> 3; <start_of_turn> / <end_of_turn> user-defined pieces, special in the published
    files): normalizer Replace(" ", "▁"), a Split(" ", merged_with_previous) pre-tokenizer, BPE with byte fallback,
    <bos> prepended, decoder Replace / ByteFallback / Fuse. Written without the tokenizer.model, so that a loader
    reads the tokenizer.json; expected.json holds transformers' ids (BOS included), its decode, and sentencepiece's own
    ids of the same texts."""
    name, target = "sp-gemma", OUT / "sp-gemma"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    turns = ["<start_of_turn>", "<end_of_turn>"]
    config = {"tokenizer_class": "GemmaTokenizer", "bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>",
              "unk_token": "<unk>", "add_bos_token": True, "add_eos_token": False}
    with tempfile.TemporaryDirectory() as work:
        model = train_sentencepiece(
            name, dict(vocab_size=800, add_dummy_prefix=False, remove_extra_whitespaces=False, user_defined_symbols=turns),
            corpus, Path(work), pad_id=0, eos_id=1, bos_id=2, unk_id=3, pad_piece="<pad>", eos_piece="<eos>",
            bos_piece="<bos>", unk_piece="<unk>")
        source = Path(work) / "source"
        source.mkdir()
        shutil.copy(model, source / "tokenizer.model")
        dump(source / "tokenizer_config.json", config)
        sp = spm.SentencePieceProcessor(model_file=str(source / "tokenizer.model"))
        layout = json.loads(transformers.AutoTokenizer.from_pretrained(source).backend_tokenizer.to_str())
    for token in layout["added_tokens"]:
        if token["content"] in turns:
            token["special"] = True
    (target / "tokenizer.json").write_text(json.dumps(layout, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    dump(target / "tokenizer_config.json", config)
    tok = transformers.AutoTokenizer.from_pretrained(target)
    cases, differ = [], 0
    for text in texts:
        ids = tok(text)["input_ids"]
        own = [sp.bos_id()] + sp.encode(text)
        if not any(t in text for t in turns):
            differ += ids != own
        cases.append({"ids": ids, "decoded": tok.decode(ids), "sentencepiece": own})
    print(f"{name}: {len(layout['model']['vocab'])} tokens; texts without turn markers whose ids differ from "
          f"sentencepiece's: {differ}")
    dump(target / "expected.json", {"differ": differ, "cases": cases})


def neox_layout_fixture(texts, corpus):
    """bpe-neox: the tokenizer.json layout of GPT-NeoX-vocabulary models (OLMoE, Pythia): NFC, ByteLevel without a
    prefix space, a ByteLevel post-processor, OLMoE's three added |||...||| tokens; tokenizer_config naming
    GPTNeoXTokenizer, which transformers 5 rebuilds from the file's vocabulary and merges. expected.json: transformers'
    ids of every text and of a few with the added tokens."""
    target = OUT / "bpe-neox"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=700, special_tokens=["<|endoftext|>", "<|padding|>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.add_tokens(["|||EMAIL_ADDRESS|||", "|||PHONE_NUMBER|||", "|||IP_ADDRESS|||"])
    tok.save(str(target / "tokenizer.json"))
    dump(target / "tokenizer_config.json", {"tokenizer_class": "GPTNeoXTokenizer", "bos_token": "<|endoftext|>",
                                            "eos_token": "<|endoftext|>", "pad_token": "<|padding|>",
                                            "unk_token": "<|endoftext|>", "add_bos_token": False,
                                            "add_eos_token": False})
    hf = transformers.AutoTokenizer.from_pretrained(target)
    extra = ["call |||PHONE_NUMBER||| or mail |||EMAIL_ADDRESS|||", "|||IP_ADDRESS|||:8080", "ａｂｃ e\u0301 Å 한국어"]
    cases = [{"text": text, "ids": hf(text)["input_ids"], "decoded": hf.decode(hf(text)["input_ids"])}
             for text in texts + extra]
    print(f"bpe-neox: {hf.vocab_size} tokens + 3 added, {len(cases)} texts")
    dump(target / "expected.json", {"cases": cases})


# ---------------------------------------------------------------- byte-level BPE pre-tokenizers

GPT2_LLAMACPP = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"
QWEN2 = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
LLAMA3 = QWEN2.replace(r"|\p{N}|", r"|\p{N}{1,3}|")
PORO = r" ?[^(\s|.,!?…。，、।۔،)]+"
CONTRACTIONS_ADAPTED = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
DEEPSEEK_LLM_LETTERS = (
    "\\s?[A-Za-z\u00b5\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u01ba\u01bc-\u01bf\u01c4-\u0293\u0295-\u02af"
    "\u0370-\u0373\u0376\u0377\u037b-\u037d\u037f\u0386\u0388-\u038a\u038c\u038e-\u03a1\u03a3-\u03f5"
    "\u03f7-\u0481\u048a-\u052f\u0531-\u0556\u10a0-\u10c5\u13a0-\u13f5\u13f8-\u13fd\u1c90-\u1cba"
    "\u1cbd-\u1cbf\u1d00-\u1d2b\u1d6b-\u1d77\u1d79-\u1d9a\u1e00-\u1f15\u1f18-\u1f1d\u1f20-\u1f45"
    "\u1f48-\u1f4d\u1f50-\u1f57\u1f59\u1f5b\u1f5d\u1f5f-\u1f7d\u1f80-\u1fb4\u1fb6-\u1fbc\u1fbe\u1fc2-"
    "\u1fc4\u1fc6-\u1fcc\u1fd0-\u1fd3\u1fd6-\u1fdb\u1fe0-\u1fec\u1ff2-\u1ff4\u1ff6-\u1ffc\u2102\u2107"
    "\u210a-\u2113\u2115\u2119-\u211d\u2124\u2126\u2128\u212a-\u212d\u212f-\u2134\u2139\u213c-\u213f"
    "\u2145-\u2149\u214e\u2183\u2184\u2c00-\u2c7b\u2c7e-\u2ce4\u2ceb-\u2cee\u2cf2\u2cf3\ua640-\ua66d"
    "\ua680-\ua69b\ua722-\ua76f\ua771-\ua787\ua78b-\ua78e\uab70-\uabbf\ufb00-\ufb06\ufb13-\ufb17"
    "\uff21-\uff3a\uff41-\uff5a\U00010400-\U0001044f\U000104b0-\U000104d3\U000104d8-\U000104fb"
    "\U00010c80-\U00010cb2\U00010cc0-\U00010cf2\U000118a0-\U000118df\U0001e900-\U0001e943]+")
TEKKEN = (r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?"
          r"[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+"
          r"|\s+(?!\S)|\s+")
GPT4O = (r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
         r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
         r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")
DEEPSEEK3_MAIN = (r"[!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+"
                  r"| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
KIMI_LETTERS_UPPER = r"[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]"
KIMI_LETTERS_LOWER = r"[\p{Ll}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]"
KIMI_K2 = (r"[\p{Han}]+|[^\r\n\p{L}\p{N}]?" + KIMI_LETTERS_UPPER + "*" + KIMI_LETTERS_LOWER
           + r"+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?" + KIMI_LETTERS_UPPER + "+" + KIMI_LETTERS_LOWER
           + r"*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
AFMOE_DIGITS = r"\p{N}{1,3}(?=(?:\p{N}{3})*(?!\p{N}))"
AFMOE_ASIAN = ("[\u4e00-\u9fff\u3400-\u4dbf\uf900-\ufaff\u3040-\u309f\u30a0-\u30ff\uff65-\uff9f\u2f00-\u2fdf"
               "\u0e40-\u0e7f\u0e80-\u0eff\u1780-\u17ff\u1000-\u109f\uaa60-\uaa7f\ua9e0-\ua9ff\uac00-\ud7af"
               "\u1100-\u11ff]+")

# kind: (regexes, ignore_merges, nfc); mirrors GGUFPreTokenizer.all (the first name of each kind names the fixture).
KINDS = {
    "default": ([r"[\p{P}\$\+<=>\^~\|]+", GPT2_LLAMACPP, r"\p{N}+", r"[0-9][0-9][0-9]"], False, False),
    "llama3": ([LLAMA3], True, False),
    "jais-2": ([LLAMA3.replace(r"|\s+(?!\S)|\s+", r"|\s{512}(?!\S)|\s{256}(?!\S)|\s{128}(?!\S)|\s{64}(?!\S)|\s{32}(?!\S)"
                              r"|\s{16}(?!\S)|\s{8}(?!\S)|\s{4}(?!\S)|\s{1,2}(?!\S)|\s{1}")], False, False),
    "dbrx": ([LLAMA3], False, False),
    "deepseek-llm": (["[\r\n]", DEEPSEEK_LLM_LETTERS, "\\s?[!-/:-~！-／：-～‘-‟　-。]+", r"\s+$", "[一-龥ࠀ-一가-퟿]+",
                      r"\p{N}+"], False, False),
    "deepseek-v3": ([r"\p{N}{1,3}", "[一-龥぀-ゟ゠-ヿ]+", DEEPSEEK3_MAIN], False, False),
    "deepseek-coder": (["[\r\n]", r"\s?\p{L}+", r"\s?\p{P}+", "[一-龥ࠀ-一가-퟿]+", r"\p{N}"], False, False),
    "falcon": ([r"[\p{P}\$\+<=>\^~\|`]+", GPT2_LLAMACPP, r"[0-9][0-9][0-9]"], False, False),
    "starcoder": ([r"\p{N}", GPT2_LLAMACPP], False, False),
    "gpt-2": ([GPT2_LLAMACPP], False, False),
    "qwen2": ([QWEN2], False, True),
    "qwen35": ([r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+"], False, False),
    "poro-chat": ([PORO], False, False),
    "chatglm-bpe": ([LLAMA3], False, False),
    "viking": ([PORO, r"\p{N}"], False, False),
    "tekken": ([TEKKEN], True, False),
    "chameleon": ([r"<sentinel:[0-9]+>", r"(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z", r"([\t\n]|    |  )", r"\p{N}",
                   r"[\p{P}!-/:-@\[-`{-~]", GPT2_LLAMACPP], False, False),
    "gpt-4o": ([GPT4O], False, False),
    "tiny_aya": ([r"\d{1,3}(?=(?:\d{3})*\b)", GPT4O], False, False),
    "superbpe": ([r"\p{N}+", r"(?=(\d{3})+(?!\d))"], False, False),
    "bailingmoe": ([r"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)"
                    r"|\s+"], False, False),
    "seed-coder": ([r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1}| ?[^\s\p{L}\p{N}\r\n]+|\s*[\r\n]+"
                    r"|\s+(?!\S)|\s+"], False, False),
    "ufakzeka": ([r"[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"], False, False),
    "laguna": ([r"[^\n]+|[\n]+", CONTRACTIONS_ADAPTED + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+"], False, False),
    "exaone-moe": ([r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?(?:\p{L}\p{M}*(?: \p{L}\p{M}*)*)+|\p{N}"
                    r"| ?[^\s\p{L}\p{N}]+[\r\n/]?|\s*[\r\n]|\s+(?!\S)|\s+"], False, False),
    "minicpm5": ([r"\p{N}{1,3}", QWEN2.replace(r"|\p{N}|", r"|\p{N}+|")], True, False),
    "spark2_5": ([r"\p{N}{1,3}", "[一-龥぀-ゟ゠-ヿ]+",
                  r"[!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+"
                  r"| ?[\p{P}\p{S}]+|[\r\n]|\s+(?!\S)|\s+", r"\p{N}"], False, False),
    "kimi-k2": ([KIMI_K2], False, False),
    "afmoe": ([AFMOE_DIGITS, AFMOE_ASIAN, DEEPSEEK3_MAIN], False, False),
}


def byte_level_fixture(kind, regexes, ignore_merges, nfc, corpus, texts):
    tok = Tokenizer(models.BPE(ignore_merges=ignore_merges))
    if nfc:
        tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(r), behavior="isolated") for r in regexes]
        + [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=700, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=["<|endoftext|>"], show_progress=False)
    tok.train_from_iterator(corpus, trainer)
    state = json.loads(tok.to_str())
    tokens = tokens_by_id(state["model"]["vocab"])
    target = bpe_folder(kind)
    with vocabulary_gguf(target / "tokenizer.gguf", "gpt2", kind, tokens) as writer:
        writer.add_token_types([gguf.TokenType.CONTROL if t == "<|endoftext|>" else gguf.TokenType.NORMAL for t in tokens])
        writer.add_token_merges(merges_of(state))
        no_bos(writer)
    cases = [tok.encode(text).ids for text in texts]
    dump(target / "expected.json", {"cases": cases})
    if kind in ("kimi-k2", "afmoe"):
        cross_check_llama_cpp(kind, target / "tokenizer.gguf", texts, cases)


def tokens_by_id(vocab):
    """The token strings of a {token: id} vocabulary, in id order."""
    tokens = [None] * len(vocab)
    for token, i in vocab.items():
        tokens[i] = token
    return tokens


def merges_of(state):
    """A tokenizer.json's BPE merges as "a b" strings (either of its two spellings)."""
    return [m if isinstance(m, str) else " ".join(m) for m in state["model"]["merges"]]


def bpe_folder(kind):
    target = OUT / f"bpe-{kind}"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    return target


def no_bos(writer):
    """Token 0 as BOS and EOS, and no BOS added: what these test vocabularies declare without a BOS of their own."""
    writer.add_bos_token_id(0)
    writer.add_eos_token_id(0)
    writer.add_add_bos_token(False)


class vocabulary_gguf:
    """A vocabulary-only GGUF: the tokenizer model, its pre-tokenizer name (None: none written) and token list on
    entry; the caller adds the rest in the body; the file is written on exit."""

    def __init__(self, path, model, pre, tokens):
        self.writer = gguf.GGUFWriter(str(path), "llama")
        self.writer.add_tokenizer_model(model)
        if pre is not None:
            self.writer.add_tokenizer_pre(pre)
        self.writer.add_token_list(tokens)

    def __enter__(self):
        return self.writer

    def __exit__(self, *exc):
        if exc[0] is None:
            self.writer.write_header_to_file()
            self.writer.write_kv_data_to_file()
            self.writer.write_tensors_to_file()
        self.writer.close()
        return False


GEMMA4_NEWLINES = ["\n" * n for n in range(1, 9)]


def raw_utf8_fixture(kind, corpus, texts):
    """A BPE over raw UTF-8 characters (no byte-level alphabet), as llama.cpp's gemma4 and whitespace kinds read."""
    byte_tokens = [f"<0x{b:02X}>" for b in range(256)]
    if kind == "gemma4":
        specials = ["<pad>", "<eos>", "<bos>"]
        tok = Tokenizer(models.BPE(byte_fallback=True))
        tok.normalizer = normalizers.Replace(" ", "\u2581")
        tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[^\n]+|[\n]+"), behavior="isolated")
        trainer = trainers.BpeTrainer(vocab_size=1000, special_tokens=specials + byte_tokens, show_progress=False)
    else:
        specials = ["<|endoftext|>"]
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.Whitespace()
        trainer = trainers.BpeTrainer(vocab_size=700, special_tokens=specials, show_progress=False)
    tok.train_from_iterator(corpus, trainer)
    if kind == "gemma4":
        tok.add_tokens([tokenizers.AddedToken(t, special=False, normalized=False) for t in GEMMA4_NEWLINES])
        tok.post_processor = processors.TemplateProcessing(single="<bos> $A", pair="<bos> $A <bos> $B",
                                                           special_tokens=[("<bos>", tok.token_to_id("<bos>"))])
    state = json.loads(tok.to_str())
    # Byte tokens are vocabulary entries in Gemma's tokenizer.json, not added tokens matched in text.
    state["added_tokens"] = [t for t in state["added_tokens"] if t["content"] not in byte_tokens]
    tok = Tokenizer.from_str(json.dumps(state))
    tokens = tokens_by_id(tok.get_vocab(with_added_tokens=True))

    def token_type(token):
        if token in specials:
            return gguf.TokenType.CONTROL
        if token in byte_tokens:
            return gguf.TokenType.BYTE
        if token in GEMMA4_NEWLINES:
            return gguf.TokenType.USER_DEFINED
        return gguf.TokenType.NORMAL

    target = bpe_folder(kind)
    # What llama.cpp's converter writes: Gemma 4 names only the model, jina's Chinese embedder pins both.
    with vocabulary_gguf(target / "tokenizer.gguf", kind, kind if kind == "whitespace" else None, tokens) as writer:
        if kind == "gemma4":
            writer.add_token_scores([0.0] * len(tokens))
        writer.add_token_types([token_type(t) for t in tokens])
        writer.add_token_merges(merges_of(state))
        if kind == "gemma4":
            writer.add_bos_token_id(tok.token_to_id("<bos>"))
            writer.add_eos_token_id(tok.token_to_id("<eos>"))
            writer.add_pad_token_id(tok.token_to_id("<pad>"))
            writer.add_add_space_prefix(False)
            writer.add_add_bos_token(True)
        else:
            no_bos(writer)
    cases = [tok.encode(text).ids for text in texts]
    dump(target / "expected.json", {"cases": cases})
    cross_check_llama_cpp(kind, target / "tokenizer.gguf", texts, cases)


def cross_check_llama_cpp(kind, path, texts, cases):
    """Reports the texts whose llama.cpp ids (special tokens parsed, as Hugging Face matches them) differ."""
    try:
        import llama_cpp
    except ImportError:
        print(f"bpe-{kind}: llama_cpp not importable, no cross-check")
        return
    model = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    add_bos = kind == "gemma4"
    differ = [i for i, (text, ids) in enumerate(zip(texts, cases))
              if model.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True) != ids]
    print(f"bpe-{kind}: llama.cpp {llama_cpp.__version__} differs from Hugging Face on {len(differ)} of {len(texts)} "
          f"texts {differ[:10]}")


def dump(path, value):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    corpus = corpus_lines()
    sp_texts = make_texts(2000, seed=11, specials=True)
    bpe_texts = sp_texts
    dump(OUT / "texts.json", sp_texts)
    sentencepiece_fixtures(sp_texts, corpus)
    gemma_layout_fixture(sp_texts, corpus)
    neox_layout_fixture(sp_texts, corpus)
    if "--only-layouts" in sys.argv:
        return
    for kind, (regexes, ignore_merges, nfc) in KINDS.items():
        byte_level_fixture(kind, regexes, ignore_merges, nfc, corpus, bpe_texts)
    for kind in ("gemma4", "whitespace"):
        raw_utf8_fixture(kind, corpus, bpe_texts)
    print("versions: sentencepiece", spm.__version__, "tokenizers", tokenizers.__version__,
          "transformers", transformers.__version__, "gguf", getattr(gguf, "__version__", "?"))


if __name__ == "__main__":
    main()
