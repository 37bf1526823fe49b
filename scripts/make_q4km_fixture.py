#!/usr/bin/env python3
"""llama.cpp's Q4_K_M of a small Qwen2-shaped model: per-tensor formats and byte checksums, the golden for
`peft quantize --type q4_k_m`.

    /opt/llama/bin/pip install gguf safetensors
    /opt/llama/bin/python scripts/make_q4km_fixture.py --peft-binary .build/release/peft

The model (hidden 256, intermediate 512, 8 layers, 4 heads / 2 KV heads, vocabulary 384, untied head, tiny-qwen2's
tokenizer) has weights from an integer hash that Swift reproduces exactly (QuantizeMixtureTests): value =
((h mod 4096) - 2048) / 65536 with h = (i * 2654435761 + 40503 * seed) mod 2^32, exact in f16. `peft quantize --type
f16` writes it as GGUF; llama.cpp (llama_model_quantize, LLAMA_FTYPE_MOSTLY_Q4_K_M) quantizes that file. Writes
Tests/Fixtures/gguf/q4_k_m.json: every tensor's GGML type and the FNV-1a 64 checksum of its bytes.
"""
import argparse
import json
import os
import shutil
import subprocess
import tempfile

import gguf
import llama_cpp
import numpy as np
from safetensors.numpy import save_file

from make_mix_fixtures import hf_tensors

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FIX = os.path.join(ROOT, "Tests", "Fixtures")
SHAPE = dict(hidden=256, intermediate=512, layers=8, heads=4, kv_heads=2, vocab=384)


def hashed(count, seed):
    i = np.arange(count, dtype=np.uint64)
    h = (i * np.uint64(2654435761) + np.uint64(40503 * seed)) % np.uint64(1 << 32)
    return (((h % np.uint64(4096)).astype(np.int64) - 2048) / 65536.0).astype(np.float32)


def tensors():
    s = SHAPE
    return {name: hashed(int(np.prod(shape)), seed).reshape(shape).astype(np.float16)
            for seed, (name, shape) in enumerate(hf_tensors(s))}


def fnv1a(data):
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--peft-binary", required=True)
    args = ap.parse_args()
    s = SHAPE
    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "model")
        os.makedirs(model)
        save_file(tensors(), os.path.join(model, "model.safetensors"), metadata={"format": "pt"})
        config = {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": s["hidden"],
                  "intermediate_size": s["intermediate"], "num_hidden_layers": s["layers"],
                  "num_attention_heads": s["heads"], "num_key_value_heads": s["kv_heads"], "vocab_size": s["vocab"],
                  "max_position_embeddings": 512, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
                  "tie_word_embeddings": False, "hidden_act": "silu", "torch_dtype": "float16"}
        json.dump(config, open(os.path.join(model, "config.json"), "w"))
        for f in ["tokenizer.json", "tokenizer_config.json"]:
            shutil.copy(os.path.join(FIX, "models", "tiny-qwen2", f), model)
        f16 = os.path.join(tmp, "f16.gguf")
        subprocess.run([args.peft_binary, "quantize", "--model", model, "--type", "f16", "--output", f16], check=True)
        q = os.path.join(tmp, "q4_k_m.gguf")
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M
        params.nthread = 2
        assert llama_cpp.llama_model_quantize(f16.encode(), q.encode(), params) == 0
        reader = gguf.GGUFReader(q)
        out = {"shape": s, "llama_cpp_version": llama_cpp.__version__, "tensors": [
            {"name": t.name, "type": int(t.tensor_type), "fnv1a": fnv1a(bytes(t.data.tobytes()))} for t in reader.tensors]}
    path = os.path.join(FIX, "gguf", "q4_k_m.json")
    json.dump(out, open(path, "w"), indent=0)
    print("wrote", path, {t["type"] for t in out["tensors"]})


if __name__ == "__main__":
    main()
