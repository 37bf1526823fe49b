#!/usr/bin/env python3
"""Seeds of the fuzz corpora (FuzzTesting/Corpus/<target>/), from the test fixtures: small valid inputs of every kind,
so libFuzzer starts from files that reach deep into each reader. Standard library only (no torch): the GGUF seeds
are written here in the layout `peft quantize` writes (one tiny f32 model, one q8_0), the rest are copies.

    python3 scripts/make_fuzz_corpus.py
"""
import json
import os
import shutil
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FIX = os.path.join(ROOT, "Tests", "Fixtures")
OUT = os.path.join(ROOT, "FuzzTesting", "Corpus")


def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def read(path):
    with open(os.path.join(FIX, path), "rb") as f:
        return f.read()


def safetensors(tensors):
    """A safetensors file of (name, dtype, shape, raw bytes)."""
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        blobs.append(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def gguf(arch, metadata, tensors):
    """A GGUF v3 file: metadata [(key, type, value)], tensors [(name, dims (ggml order), ggml type, raw bytes)]."""
    def string(s):
        b = s.encode()
        return struct.pack("<Q", len(b)) + b

    def value(t, v):
        if t == 4: return struct.pack("<I", v)
        if t == 5: return struct.pack("<i", v)
        if t == 6: return struct.pack("<f", v)
        if t == 7: return struct.pack("<?", v)
        if t == 8: return string(v)
        if t == 10: return struct.pack("<Q", v)
        if t == 9:
            et, items = v
            return struct.pack("<IQ", et, len(items)) + b"".join(value(et, i) for i in items)
        raise ValueError(t)

    kv = [("general.architecture", 8, arch)] + metadata
    out = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kv))
    for k, t, v in kv:
        out += string(k) + struct.pack("<I", t) + value(t, v)
    offset, infos, blobs = 0, b"", []
    for name, dims, gtype, raw in tensors:
        infos += string(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        infos += struct.pack("<IQ", gtype, offset)
        pad = (32 - len(raw) % 32) % 32
        blobs.append(raw + b"\0" * pad)
        offset += len(raw) + pad
    out += infos
    out += b"\0" * ((32 - len(out) % 32) % 32)
    return out + b"".join(blobs)


def tiny_gguf():
    """A 1-layer qwen2 of hidden 8 (2 heads of 4), vocabulary of 6 byte-level tokens, f32 and one q8_0 matrix."""
    c, i, v = 8, 16, 6
    f32 = lambda n, s=0.1: struct.pack(f"<{n}f", *[s * ((k * 7) % 5 - 2) for k in range(n)])
    tensors = [("token_embd.weight", [c, v], 0, f32(c * v)), ("output_norm.weight", [c], 0, f32(c, 1.0))]
    for name, dims in [("attn_q", [c, c]), ("attn_k", [c, c]), ("attn_v", [c, c]), ("attn_output", [c, c]),
                       ("ffn_gate", [c, i]), ("ffn_up", [c, i]), ("ffn_down", [i, c])]:
        tensors.append((f"blk.0.{name}.weight", dims, 0, f32(dims[0] * dims[1])))
    for name in ["attn_q", "attn_k", "attn_v"]:
        tensors.append((f"blk.0.{name}.bias", [c], 0, f32(c)))
    tensors += [("blk.0.attn_norm.weight", [c], 0, f32(c, 1.0)), ("blk.0.ffn_norm.weight", [c], 0, f32(c, 1.0))]
    tokens = ["a", "b", "Ġ", "ab", "<|endoftext|>", "<|im_end|>"]
    meta = [("qwen2.block_count", 4, 1), ("qwen2.context_length", 4, 64), ("qwen2.embedding_length", 4, c),
            ("qwen2.feed_forward_length", 4, i), ("qwen2.attention.head_count", 4, 2),
            ("qwen2.attention.head_count_kv", 4, 2), ("qwen2.rope.freq_base", 6, 10000.0),
            ("qwen2.attention.layer_norm_rms_epsilon", 6, 1e-6), ("tokenizer.ggml.model", 8, "gpt2"),
            ("tokenizer.ggml.pre", 8, "qwen2"), ("tokenizer.ggml.tokens", 9, (8, tokens)),
            ("tokenizer.ggml.token_type", 9, (5, [1, 1, 1, 1, 3, 3])), ("tokenizer.ggml.merges", 9, (8, ["a b"])),
            ("tokenizer.ggml.eos_token_id", 4, 5), ("tokenizer.chat_template", 8, "{% for m in messages %}{{ m.content }}{% endfor %}")]
    plain = gguf("qwen2", meta, tensors)
    # The same with the 32-wide ffn_down rows... as q8_0 blocks: one block (2-byte f16 scale + 32 int8) per 32 weights.
    q8 = [(n, d, t, r) for n, d, t, r in tensors if n != "blk.0.ffn_down.weight"]
    q8.append(("blk.0.ffn_down.weight", [32, 4], 8, b"".join(struct.pack("<e", 0.01) + bytes(range(32)) for _ in range(4))))
    return plain, gguf("qwen2", [(k, t, v) if k != "qwen2.feed_forward_length" else (k, t, 32) for k, t, v in meta], q8)


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    # safetensors: small adapters and a hand-made file of every dtype.
    put("FuzzSafetensors", "lora-all.safetensors", read("adapters/tiny-qwen2-lora-all/adapter_model.safetensors"))
    put("FuzzSafetensors", "dtypes.safetensors", safetensors([
        ("f32", "F32", [2, 2], struct.pack("<4f", 1, 2, 3, 4)), ("f16", "F16", [3], struct.pack("<3e", 1, -2, 0.5)),
        ("bf16", "BF16", [2], b"\x80\x3f\x00\x40"), ("i64", "I64", [1], struct.pack("<q", 7)),
        ("scalar", "F32", [], struct.pack("<f", 9))]))
    plain, q8 = tiny_gguf()
    put("FuzzGGUF", "tiny-qwen2-f32.gguf", plain)
    put("FuzzGGUF", "tiny-qwen2-q8_0.gguf", q8)
    for model in ["tiny-qwen2", "tiny-llama", "tiny-qwen1", "tiny-phi3", "tiny-gemma2", "tiny-gemma3", "tiny-glm4",
                  "tiny-internlm2", "tiny-baichuan2", "tiny-qwen3-moe", "tiny-chatglm", "tiny-mistral"]:
        put("FuzzConfig", model + ".json", read(f"models/{model}/config.json"))
    put("FuzzTokenizerJSON", "tiny-qwen2", read("models/tiny-qwen2/tokenizer.json") + "\0Hello world, 你好 123 <|im_end|>".encode())
    for name in os.listdir(os.path.join(FIX, "tokenizers")):
        p = os.path.join(FIX, "tokenizers", name, "tokenizer.json")
        if os.path.exists(p) and os.path.getsize(p) < 40000:
            put("FuzzTokenizerJSON", name, read(f"tokenizers/{name}/tokenizer.json") + b"\0 The 12345 caf\xc3\xa9  \n\t!")
    put("FuzzSentencePiece", "sp-llama.model", read("tokenizers/sp-llama/tokenizer.model"))
    for name, text in [("object", '{"a": [1, 2.5e-3, "x\\u00e9\\ud83d\\ude00"], "b": {"c": null, "d": true}}'),
                       ("array", '[[[], {}], "", -0, 1E+2]'), ("bom", "\ufeff{}")]:
        put("FuzzJSON", name + ".json", text)
    put("FuzzJSON", "tokenizer.json", read("models/tiny-qwen2/tokenizer.json"))
    messages = json.dumps([{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"},
                           {"role": "assistant", "content": "hello", "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": {"x": 1}}}]},
                           {"role": "tool", "content": "42"}, {"role": "user", "content": "and?"}])
    for name in sorted(os.listdir(os.path.join(FIX, "templates"))):
        if name.endswith(".jinja") and os.path.getsize(os.path.join(FIX, "templates", name)) < 12000:
            put("FuzzJinja", name, read(f"templates/{name}") + b"\0" + messages.encode())
    for name, text in [("alpaca.jsonl", '{"instruction": "a", "input": "b", "output": "c"}\n{"instruction": "d", "output": "e", "system": "s", "history": [["q", "r"]]}\n'),
                       ("sharegpt.json", json.dumps([{"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}], "system": "x"}])),
                       ("messages.jsonl", json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}) + "\n"),
                       ("tools.jsonl", json.dumps({"messages": [{"role": "user", "content": "w?"}, {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {"name": "get", "arguments": "{\"c\": 1}"}}]}, {"role": "tool", "content": "3"}, {"role": "assistant", "content": "3"}], "tools": [{"type": "function", "function": {"name": "get", "parameters": {}}}]}) + "\n")]:
        put("FuzzDataset", name, text)
    for name in ["adapters/tiny-qwen2-lora-all", "methods/tiny-qwen2-dora/adapter", "methods/tiny-qwen2-ia3/adapter",
                 "methods/tiny-qwen2-prompt/adapter", "methods/tiny-qwen2-prefix/adapter", "methods/tiny-qwen2-ptuning/adapter"]:
        weights = read(f"{name}/adapter_model.safetensors")
        if len(weights) < 200000:
            put("FuzzAdapter", name.replace("/", "_"), read(f"{name}/adapter_config.json") + b"\0" + weights)
    for name, body in [("chat", {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, "temperature": 0.5, "stop": ["x"], "stream": True, "stream_options": {"include_usage": True}}),
                       ("tools", {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}], "tool_choice": "auto"}),
                       ("completion", {"model": "tiny", "prompt": "once upon", "max_tokens": 8, "top_p": 0.9, "seed": 3, "logprobs": 2}),
                       ("ids", {"model": "tiny", "prompt": [1, 2, 3], "n": 1, "ignore_eos": True})]:
        put("FuzzOpenAIRequest", name + ".json", json.dumps(body))
    put("FuzzHubResponse", "revision.json", json.dumps({"sha": "0123456789abcdef0123456789abcdef01234567",
                                                         "siblings": [{"rfilename": "config.json"}, {"rfilename": "sub/model.safetensors"}]}))
    put("FuzzHubResponse", "glob", "*.safetensors\0model-00001-of-00002.safetensors")


if __name__ == "__main__":
    main()
