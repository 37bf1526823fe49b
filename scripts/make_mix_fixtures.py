#!/usr/bin/env python3
"""llama.cpp's per-tensor type choices and bytes for every file type `peft quantize --type` offers.

    /opt/llama/bin/python scripts/make_mix_fixtures.py types
    /opt/llama/bin/python scripts/make_mix_fixtures.py bytes --peft-binary .build/release/peft

Needs numpy, gguf and llama-cpp-python (built from llama.cpp's source; it exposes llama_model_quantize).

`types` writes Tests/Fixtures/gguf/mix/types.json. For each of several tiny Llama, Qwen2 and Qwen3 shapes (layer
counts 2 to 80, grouped-query factors 1 to 8, tied and untied embeddings, rows that are not whole 256-blocks or not
even whole 32-blocks) it writes an f16 GGUF with the `gguf` package (1-D tensors in f32, as llama.cpp's converter
writes them), quantizes it with llama_model_quantize for every file type, and records every tensor's type as the
output file has it (null where llama.cpp refuses the file). Weights are random: only the types are kept.

`bytes` writes Tests/Fixtures/gguf/mix/bytes.json. A Qwen2 folder (16 layers, hidden 256, 8 heads / 2 KV heads,
intermediate 512, vocabulary 384, untied head, tiny-qwen2's tokenizer) with f32 weights from an integer hash that
Swift reproduces exactly (GGUFMixTests.weights): `peft quantize --type f32` writes it as GGUF, llama_model_quantize
quantizes that file to every file type, and the file's general.file_type and each 2-D tensor's type and the sha256
of its bytes are recorded.
"""
import argparse
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

import gguf
import llama_cpp
import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FIX = os.path.join(ROOT, "Tests", "Fixtures")
OUT = os.path.join(FIX, "gguf", "mix")

# --type name -> (llama_ftype, pure). q4_k is every matrix q4_k: llama-quantize's --pure Q4_K_S.
FILE_TYPES = {
    "f32": (0, False), "f16": (1, False), "bf16": (32, False),
    "q4_0": (2, False), "q4_1": (3, False), "q5_0": (8, False), "q5_1": (9, False), "q8_0": (7, False),
    "q2_k": (10, False), "q3_k_s": (11, False), "q3_k_m": (12, False), "q3_k_l": (13, False),
    "q4_k_s": (14, False), "q4_k_m": (15, False), "q5_k_s": (16, False), "q5_k_m": (17, False), "q6_k": (18, False),
    "iq4_nl": (25, False), "iq4_xs": (30, False), "q4_k": (14, True),
}

# name, architecture, layers, hidden, heads, kv heads, head dim, intermediate, vocabulary, tied, rope_freqs
MODELS = [
    ("llama-2-h64", "llama", 2, 64, 4, 4, 16, 352, 128, False, True),
    ("qwen2-24-gqa4-tied", "qwen2", 24, 256, 8, 2, 32, 352, 256, True, False),
    ("qwen2-28-mha", "qwen2", 28, 512, 4, 4, 128, 768, 256, False, False),
    ("llama-32-gqa8-tied", "llama", 32, 256, 8, 1, 32, 512, 256, True, False),
    ("llama-40-gqa3-h192", "llama", 40, 192, 6, 2, 32, 512, 256, False, False),
    ("qwen3-28-i360-tied", "qwen3", 28, 256, 4, 2, 128, 360, 256, True, False),
    ("llama-80-gqa4", "llama", 80, 256, 8, 2, 32, 256, 256, False, False),
    ("llama-80-mha-tied", "llama", 80, 256, 4, 4, 64, 256, 256, True, False),
    ("qwen2-80-mha", "qwen2", 80, 256, 4, 4, 64, 256, 256, False, False),
    ("qwen3-80-gqa4", "qwen3", 80, 256, 8, 2, 32, 256, 256, False, False),
]


def gguf_tensors(arch, layers, c, heads, kv_heads, hd, inter, vocab, tied, rope_freqs):
    """(name, shape) in the order `peft quantize` writes them; shapes [rows, cols] or [n]."""
    q, kv = heads * hd, kv_heads * hd
    out = [("token_embd.weight", [vocab, c])]
    for l in range(layers):
        p = f"blk.{l}."
        out.append((p + "attn_norm.weight", [c]))
        for name, shape, bias in [("attn_q", [q, c], True), ("attn_k", [kv, c], True), ("attn_v", [kv, c], True),
                                  ("attn_output", [c, q], False), ("ffn_gate", [inter, c], False),
                                  ("ffn_up", [inter, c], False), ("ffn_down", [c, inter], False)]:
            out.append((p + name + ".weight", shape))
            if bias and arch == "qwen2":
                out.append((p + name + ".bias", [shape[0]]))
        if arch == "qwen3":
            out += [(p + "attn_q_norm.weight", [hd]), (p + "attn_k_norm.weight", [hd])]
        out.append((p + "ffn_norm.weight", [c]))
    out.append(("output_norm.weight", [c]))
    if not tied:
        out.append(("output.weight", [vocab, c]))
    if rope_freqs:
        out.append(("rope_freqs.weight", [hd // 2]))
    return out


def write_gguf(path, arch, layers, c, heads, kv_heads, hd, inter, vocab, tensors, rng):
    w = gguf.GGUFWriter(path, arch)
    w.add_block_count(layers)
    w.add_context_length(256)
    w.add_embedding_length(c)
    w.add_feed_forward_length(inter)
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_rope_freq_base(10000.0)
    w.add_file_type(1)
    if arch == "llama":
        w.add_vocab_size(vocab)
        w.add_rope_dimension_count(hd)
    if hd * heads != c or arch == "qwen3":
        w.add_key_length(hd)
        w.add_value_length(hd)
    for name, shape in tensors:
        if len(shape) == 1:
            w.add_tensor(name, (1 + 0.1 * rng.standard_normal(shape)).astype(np.float32))
        else:
            w.add_tensor(name, (0.02 * rng.standard_normal(shape)).astype(np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def quantize(src, dst, kind):
    ftype, pure = FILE_TYPES[kind]
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.pure = pure
    params.nthread = 2
    return llama_cpp.llama_model_quantize(src.encode(), dst.encode(), params) == 0


def type_name(t):
    return t.tensor_type.name.lower()


def make_types():
    models = []
    for (name, arch, layers, c, heads, kv_heads, hd, inter, vocab, tied, rope_freqs) in MODELS:
        tensors = gguf_tensors(arch, layers, c, heads, kv_heads, hd, inter, vocab, tied, rope_freqs)
        entry = {"name": name, "architecture": arch, "layers": layers, "hidden": c, "heads": heads,
                 "kv_heads": kv_heads, "head_dim": hd, "intermediate": inter, "vocab": vocab, "tied": tied,
                 "tensors": [[n, s] for n, s in tensors], "types": {}}
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "in.gguf")
            write_gguf(src, arch, layers, c, heads, kv_heads, hd, inter, vocab, tensors, np.random.default_rng(len(models)))
            for kind in FILE_TYPES:
                dst = os.path.join(tmp, kind + ".gguf")
                if not quantize(src, dst, kind):
                    entry["types"][kind] = None
                    print(name, kind, "refused", file=sys.stderr)
                    continue
                got = {t.name: type_name(t) for t in gguf.GGUFReader(dst).tensors}
                assert set(got) == {n for n, _ in tensors}, (name, kind)
                entry["types"][kind] = " ".join(got[n] for n, _ in tensors)
                os.remove(dst)
        models.append(entry)
        print(name, "done", file=sys.stderr)
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, "types.json")
    with open(path, "w") as f:
        json.dump({"llama_cpp_version": llama_cpp.__version__, "models": models}, f, separators=(",", ":"))
    print("wrote", path)


# The bytes model.
SHAPE = dict(hidden=256, intermediate=512, layers=16, heads=8, kv_heads=2, vocab=384)
M1, M2, M3, M4 = 0x9E3779B97F4A7C15, 0xD1B54A32D192ED03, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB


def hf_tensors(s=SHAPE):
    """(name, shape) of every tensor of a Qwen2 folder of shape `s` (untied head, q/k/v biases), in writing order
    (make_q4km_fixture.py uses it too)."""
    c, i = s["hidden"], s["intermediate"]
    kv = s["kv_heads"] * c // s["heads"]
    shapes = [("model.embed_tokens.weight", [s["vocab"], c])]
    for l in range(s["layers"]):
        p = f"model.layers.{l}"
        shapes += [(f"{p}.input_layernorm.weight", [c]), (f"{p}.post_attention_layernorm.weight", [c]),
                   (f"{p}.self_attn.q_proj.weight", [c, c]), (f"{p}.self_attn.q_proj.bias", [c]),
                   (f"{p}.self_attn.k_proj.weight", [kv, c]), (f"{p}.self_attn.k_proj.bias", [kv]),
                   (f"{p}.self_attn.v_proj.weight", [kv, c]), (f"{p}.self_attn.v_proj.bias", [kv]),
                   (f"{p}.self_attn.o_proj.weight", [c, c]), (f"{p}.mlp.gate_proj.weight", [i, c]),
                   (f"{p}.mlp.up_proj.weight", [i, c]), (f"{p}.mlp.down_proj.weight", [c, i])]
    shapes += [("model.norm.weight", [c]), ("lm_head.weight", [s["vocab"], c])]
    return shapes


def weights(name, shape, seed):
    """Element i (row-major) of tensor number `seed`: z = splitmix64's mix of i * M1 + (seed + 1) * M2 (mod 2^64),
    v = the sum of z's four 16-bit pieces - 131070, times 16 where z's top 6 bits are 0; the weight is
    v * 2^-(20 + row mod 4), 0 in matrix rows with row mod 29 == 11, and 1 + v * 2^-20 in norms. Exact in f32."""
    n = int(np.prod(shape))
    cols = shape[-1]
    i = np.arange(n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = i * np.uint64(M1) + np.uint64((seed + 1) * M2 % (1 << 64))
        z = (z ^ (z >> np.uint64(30))) * np.uint64(M3)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(M4)
        z = z ^ (z >> np.uint64(31))
    mask = np.uint64(0xFFFF)
    s = ((z & mask) + ((z >> np.uint64(16)) & mask) + ((z >> np.uint64(32)) & mask) + ((z >> np.uint64(48)) & mask))
    v = s.astype(np.int64) - 131070
    row = (i // np.uint64(cols)).astype(np.int64)
    v = np.where((z >> np.uint64(58)) == 0, v * 16, v)
    out = v.astype(np.float64) * np.exp2(-(20 + row % 4).astype(np.float64))
    if name.endswith("norm.weight"):
        out = 1 + v.astype(np.float64) * 2.0 ** -20
    elif len(shape) == 2:
        out = np.where(row % 29 == 11, 0.0, out)
    f = out.astype(np.float32)
    assert np.array_equal(f.astype(np.float64), out)
    return f.reshape(shape)


def write_safetensors(path, tensors, dtype="F32"):
    """A safetensors file of (name, array) in that order, every array as `dtype` (F32 or F16), written by hand."""
    header, offset, blobs = {"__metadata__": {"format": "pt"}}, 0, []
    for name, array in tensors:
        data = array.astype({"F32": "<f4", "F16": "<f2"}[dtype]).tobytes()
        header[name] = {"dtype": dtype, "shape": list(array.shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def make_bytes(peft_binary):
    s = SHAPE
    runs, file_types = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "model")
        os.makedirs(model)
        write_safetensors(os.path.join(model, "model.safetensors"),
                          [(name, weights(name, shape, seed)) for seed, (name, shape) in enumerate(hf_tensors())])
        config = {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": s["hidden"],
                  "intermediate_size": s["intermediate"], "num_hidden_layers": s["layers"],
                  "num_attention_heads": s["heads"], "num_key_value_heads": s["kv_heads"], "vocab_size": s["vocab"],
                  "max_position_embeddings": 512, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
                  "tie_word_embeddings": False, "hidden_act": "silu", "torch_dtype": "float32"}
        with open(os.path.join(model, "config.json"), "w") as f:
            json.dump(config, f)
        for name in ["tokenizer.json", "tokenizer_config.json"]:
            shutil.copy(os.path.join(FIX, "models", "tiny-qwen2", name), model)
        f32 = os.path.join(tmp, "input-f32.gguf")
        subprocess.run([peft_binary, "quantize", "--model", model, "--type", "f32", "--output", f32], check=True)
        names = None
        for kind in FILE_TYPES:
            dst = os.path.join(tmp, kind + ".gguf")
            assert quantize(f32, dst, kind), kind
            reader = gguf.GGUFReader(dst)
            file_types[kind] = int(reader.fields["general.file_type"].parts[-1][0])
            matrices = [t for t in reader.tensors if len(t.shape) == 2]
            if names is None:
                names = [t.name for t in matrices]
            assert names == [t.name for t in matrices], kind
            runs[kind] = [f"{type_name(t)} {hashlib.sha256(t.data.tobytes()).hexdigest()}" for t in matrices]
            os.remove(dst)
    path = os.path.join(OUT, "bytes.json")
    os.makedirs(OUT, exist_ok=True)
    with open(path, "w") as f:
        json.dump({"llama_cpp_version": llama_cpp.__version__, "shape": s, "file_types": file_types,
                   "tensors": names, "runs": runs}, f,
                  indent=0)
    print("wrote", path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("part", choices=["types", "bytes"])
    ap.add_argument("--peft-binary")
    args = ap.parse_args()
    if args.part == "types":
        make_types()
    else:
        if not args.peft_binary:
            ap.error("bytes needs --peft-binary")
        make_bytes(args.peft_binary)


if __name__ == "__main__":
    main()
