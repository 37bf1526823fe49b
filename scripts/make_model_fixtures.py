#!/usr/bin/env python3
"""Builds the tiny random checkpoints and golden numbers that the Swift tests compare against.

Run from the repository root:  python3 scripts/make_model_fixtures.py
Needs: torch, transformers (5.x), tokenizers. Writes Tests/Fixtures/models/* and Tests/Fixtures/golden/*.json.
Deterministic: fixed seeds; the same versions give the same bytes.
"""
import copy
import json
import os
import shutil

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers, normalizers, Regex
from transformers import (AutoModelForCausalLM, LlamaConfig, MistralConfig, Qwen2Config, Qwen3Config,
                          PreTrainedTokenizerFast)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
MODELS = os.path.join(ROOT, "Tests", "Fixtures", "models")
GOLDEN = os.path.join(ROOT, "Tests", "Fixtures", "golden")
QWEN2_PATTERN = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
CHATML = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
          "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
          "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")

CORPUS = [
    "使用中医知识正确回答适合这个病例的中成药。", "我最近总是咳嗽，痰多而且发黄，喉咙也痛。",
    "推荐用药：银翘解毒片。主要成分：金银花、连翘、薄荷。", "注意事项：忌烟酒及辛辣食物。",
    "The quick brown fox jumps over the lazy dog.", "def main():\n    print('hello, world')\n",
    "Instruction: answer the question.\nInput: what is 2 + 2?\nAnswer: 4", "You are a helpful assistant.",
    "It's a test; we're testing 12345 numbers and emoji 🙂 too.",
] * 20


def make_tokenizer(directory, vocab_size=300):
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=[], show_progress=False)
    tok.train_from_iterator(CORPUS, trainer)
    # Qwen's order: <|endoftext|>, <|im_start|>, <|im_end|> right after the BPE vocabulary (300, 301, 302).
    tok.add_special_tokens(["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    fast.chat_template = CHATML
    fast.save_pretrained(directory)
    return fast


def randomise(model, seed):
    """Larger-than-default random weights so logits are well separated (greedy decoding is not tie-prone)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1 and "norm" in name:
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=g))
            elif p.dim() == 1:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(torch.randn(p.shape, generator=g) / (p.shape[1] ** 0.5))


def golden(model, name, extra=None):
    model.eval()
    torch.manual_seed(0)
    seqs = [[5, 17, 42, 99, 3, 250, 7, 1, 64, 128, 77], [300, 12, 8, 190, 33]]
    logits = []
    with torch.no_grad():
        for s in seqs:
            out = model(torch.tensor([s])).logits[0]
            logits.append(out.float().flatten().tolist())
        ids = list(seqs[0])
        for _ in range(32):
            nxt = int(model(torch.tensor([ids])).logits[0, -1].argmax())
            ids.append(nxt)
    data = {"sequences": seqs, "logits": logits, "greedy_prompt": seqs[0], "greedy_continuation": ids[len(seqs[0]):],
            "vocab_size": model.config.vocab_size}
    if extra:
        data.update(extra)
    with open(os.path.join(GOLDEN, name + ".json"), "w") as f:
        json.dump(data, f)


def save(model, name, tokenizer_from=None, **kw):
    d = os.path.join(MODELS, name)
    shutil.rmtree(d, ignore_errors=True)
    model.save_pretrained(d, **kw)
    make_tokenizer(d)
    gen = {"bos_token_id": 300, "eos_token_id": [302, 300], "pad_token_id": 300, "do_sample": True,
           "temperature": 0.7, "top_p": 0.8, "top_k": 20, "repetition_penalty": 1.05}
    with open(os.path.join(d, "generation_config.json"), "w") as f:
        json.dump(gen, f, indent=2)
    return d


def main():
    torch.set_num_threads(2)
    os.makedirs(MODELS, exist_ok=True)
    os.makedirs(GOLDEN, exist_ok=True)
    common = dict(vocab_size=384, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-6,
                  bos_token_id=300, eos_token_id=302)

    # Qwen2: q/k/v bias, tied embeddings, large rope_theta, GQA 4:2.
    cfg = Qwen2Config(**common, rope_theta=1000000.0, tie_word_embeddings=True)
    torch.manual_seed(1)
    m = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    randomise(m, 1)
    save(m, "tiny-qwen2")
    golden(m, "tiny-qwen2")

    # The same Qwen2 weights rounded to bf16, saved as bf16 in two shards (index.json path).
    # (Copies: Module.to() works in place and would also round the rotary inv_freq buffer.)
    save(copy.deepcopy(m).to(torch.bfloat16), "tiny-qwen2-bf16-sharded", max_shard_size="60KB")
    rounded = copy.deepcopy(m)
    with torch.no_grad():
        for p in rounded.parameters():
            p.copy_(p.to(torch.bfloat16).to(torch.float32))
    golden(rounded, "tiny-qwen2-bf16")

    # Llama: no biases, untied head, llama3 rope scaling, MHA 4:4.
    cfg = LlamaConfig(**{**common, "num_key_value_heads": 4}, rope_theta=500000.0, tie_word_embeddings=False,
                      rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                    "high_freq_factor": 4.0, "original_max_position_embeddings": 64})
    torch.manual_seed(2)
    m = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    randomise(m, 2)
    save(m, "tiny-llama")
    golden(m, "tiny-llama")

    # Qwen3: q/k RMSNorm, explicit head_dim (32) != hidden / heads (16), tied.
    cfg = Qwen3Config(**common, head_dim=32, rope_theta=1000000.0, tie_word_embeddings=True)
    torch.manual_seed(3)
    m = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    randomise(m, 3)
    save(m, "tiny-qwen3")
    golden(m, "tiny-qwen3")
    # Mistral: sliding-window attention with a window (4) shorter than the test sequences.
    cfg = MistralConfig(**common, sliding_window=4, rope_theta=10000.0, tie_word_embeddings=False)
    cfg._attn_implementation = "eager"
    torch.manual_seed(4)
    m = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    randomise(m, 4)
    save(m, "tiny-mistral")
    golden(m, "tiny-mistral")
    # Qwen2 with use_sliding_window: layer 0 full attention, layer 1 a window of 4 (max_window_layers = 1).
    cfg = Qwen2Config(**common, rope_theta=1000000.0, tie_word_embeddings=True, use_sliding_window=True,
                      sliding_window=4, max_window_layers=1)
    cfg._attn_implementation = "eager"
    torch.manual_seed(5)
    m = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    randomise(m, 5)
    save(m, "tiny-qwen2-swa")
    golden(m, "tiny-qwen2-swa")
    print("wrote", MODELS, GOLDEN)


if __name__ == "__main__":
    main()
