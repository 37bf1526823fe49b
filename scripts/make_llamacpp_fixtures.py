#!/usr/bin/env python3
"""llama.cpp runs the GGUF files `peft quantize` writes: its greedy tokens become the golden for ours.

    python3 -m venv /opt/llama && /opt/llama/bin/pip install llama-cpp-python   # builds llama.cpp from source
    # the same source tree's converter: the llama-cpp-python sdist's vendor/llama.cpp
    /opt/llama/bin/python scripts/make_llamacpp_fixtures.py --peft-binary .build/debug/peft \
        --llama-src llama_cpp_python-0.3.36/vendor/llama.cpp --convert-python python3   # a Python with torch
Writes Tests/Fixtures/gguf/llamacpp.json: for tiny-qwen2 in q8_0 and q4_0, tiny-llama (llama.cpp's `llama`
architecture, whose query/key rows the export reorders), tiny-qwen3, tiny-qwen1 (llama.cpp's `qwen`) tiny-qwen3-moe (`qwen3moe`), tiny-qwen2-moe-sparse (`qwen2moe`), tiny-olmoe-mha (`olmoe`), tiny-gemma3 (`gemma3`), tiny-gemma2-s16 (`gemma2`, in f16),
tiny-phi-longrope (`phi3`), tiny-internlm2 (`internlm2`), tiny-internlm3 (`llama`, f16), tiny-glm (`chatglm`), tiny-glm4 (`glm4`) and
tiny-baichuan2-32 (`baichuan`, f16; see write_family_variants), tiny-baichuan2-13b (`baichuan` with ALiBi, 40 layers, f16) in q8_0, two prompts (token ids), llama.cpp's
16 greedy tokens after each, and its logits of the last prompt position. Runs are keyed "q8_0" (tiny-qwen2) or
"MODEL/TYPE". The GGUF files themselves are rebuilt by the
test from the fixture model (the export is deterministic).

A SentencePiece model, Tests/Fixtures/models/tiny-llama-sp (Llama, grouped KV heads, the 800-piece `tokenizer.model`
of Tests/Fixtures/tokenizers/sp-llama and no tokenizer.json), goes through llama.cpp's own pipeline: its
`convert_hf_to_gguf.py` writes Tests/Fixtures/gguf/tiny-llama-sp-f32.gguf (committed), `llama_model_quantize` makes a
q8_0 of it, and Tests/Fixtures/gguf/llamacpp-sp.json keeps llama.cpp's token ids for SP_TEXTS (with BOS, as its
vocabulary asks; control tokens in the text parsed) and its greedy tokens and first logits for both files.
"""
import argparse
import json
import os
import struct
import subprocess
import tempfile

import llama_cpp
import numpy as np

from make_mix_fixtures import write_safetensors

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FIX = os.path.join(ROOT, "Tests", "Fixtures")
PROMPTS = [[301, 17, 42, 99, 3, 302, 198, 301], [5, 6, 7, 8, 9, 10]]


# A Qwen2 whose every matrix is a whole number of 256-weight super-blocks, so the k-quants and iq4_xs apply without
# fallbacks (hidden 256, intermediate 512, 4 heads of 64, 2 KV heads, untied head), f16 weights written here.
K_MODEL = "tiny-qwen2-k"
K_TYPES = ["q4_1", "q5_0", "q5_1", "iq4_nl", "q2_k", "q3_k_s", "q3_k_m", "q4_k_s", "q4_k_m", "q5_k_m", "q6_k", "iq4_xs"]


def write_k_model():
    """Writes Tests/Fixtures/models/tiny-qwen2-k (config, f16 safetensors written by hand, tiny-qwen2's tokenizer)."""
    out = os.path.join(FIX, "models", K_MODEL)
    os.makedirs(out, exist_ok=True)
    src = os.path.join(FIX, "models", "tiny-qwen2")
    for name in ["tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "generation_config.json"]:
        with open(os.path.join(src, name), "rb") as f, open(os.path.join(out, name), "wb") as g:
            g.write(f.read())
    config = json.load(open(os.path.join(src, "config.json")))
    H, I, L, V = 256, 512, 2, config["vocab_size"]
    config.update(hidden_size=H, intermediate_size=I, num_hidden_layers=L, num_attention_heads=4,
                  num_key_value_heads=2, tie_word_embeddings=False, dtype="float16")
    json.dump(config, open(os.path.join(out, "config.json"), "w"), indent=2)
    write_random_decoder(out, np.random.RandomState(11), H, I, L, V, [("q_proj", H), ("k_proj", 128), ("v_proj", 128)],
                         biases=True, dtype="F16")


def write_gemma2_variant():
    """Tests/Fixtures/models/tiny-gemma2-s16: tiny-gemma2 with query_pre_attn_scalar = head_dim (16), the scale llama.cpp
    uses for Gemma 2 (it does not read the field; our tiny-gemma2's 24 is refused for export)."""
    src, out = os.path.join(FIX, "models", "tiny-gemma2"), os.path.join(FIX, "models", "tiny-gemma2-s16")
    os.makedirs(out, exist_ok=True)
    for name in os.listdir(src):
        with open(os.path.join(src, name), "rb") as f, open(os.path.join(out, name), "wb") as g:
            g.write(f.read())
    config = json.load(open(os.path.join(src, "config.json")))
    config["query_pre_attn_scalar"] = 16
    json.dump(config, open(os.path.join(out, "config.json"), "w"), indent=2)


def read_safetensors(path):
    """(name, float32 array) of a safetensors file of F32/F16 tensors, in file order (numpy only)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = []
    for name, info in sorted(((k, v) for k, v in header.items() if k != "__metadata__"), key=lambda kv: kv[1]["data_offsets"][0]):
        a, b = info["data_offsets"]
        out.append((name, np.frombuffer(data[a:b], dtype={"F32": "<f4", "F16": "<f2"}[info["dtype"]]).astype(np.float32).reshape(info["shape"])))
    return out


def copy_model(src_name, out_name, config_update):
    """Tests/Fixtures/models/OUT: SRC's files with its config updated; returns (out dir, config)."""
    src, out = os.path.join(FIX, "models", src_name), os.path.join(FIX, "models", out_name)
    os.makedirs(out, exist_ok=True)
    for name in os.listdir(src):
        with open(os.path.join(src, name), "rb") as f, open(os.path.join(out, name), "wb") as g:
            g.write(f.read())
    config = json.load(open(os.path.join(src, "config.json")))
    config.update(config_update)
    json.dump(config, open(os.path.join(out, "config.json"), "w"), indent=2)
    return out, config


def write_family_variants():
    """Variants of the family fixtures that llama.cpp runs as transformers does:
    - tiny-baichuan2-32: tiny-baichuan2 grown to 32 layers (llama.cpp's baichuan applies rotary positions only to its
      32-layer 7B), in f16; layer l is layer l % 2 plus small noise (seed 5), its output projections scaled by 0.35 so
      the residual stream stays tame.
    - tiny-phi-longrope: tiny-phi3 without its sliding window (llama.cpp's phi3 ignores windows) and with
      original_max_position_embeddings 256 = max_position_embeddings, so both use the short LongRoPE factors (llama.cpp
      picks them by context size, 256 in these runs; transformers by sequence lengt). Its name avoids "phi3": llama.cpp marks
      tokens of any file whose general.name contains it and then needs "</s>" in the vocabulary, which this byte-level
      one lacks.
    - tiny-olmoe-mha: tiny-olmoe with its key/value heads repeated (llama.cpp's olmoe has no grouped keys).
    - tiny-qwen2-moe-sparse: tiny-qwen2-moe with every layer a mixture (llama.cpp's qwen2moe has no dense layers):
      layer 1's dense MLP gives way to layer 0's experts, router, shared expert and its gate plus small noise (seed 7)."""
    out, config = copy_model("tiny-baichuan2", "tiny-baichuan2-32", {"num_hidden_layers": 32, "torch_dtype": "float16"})
    rng = np.random.RandomState(5)
    tensors, source = [], read_safetensors(os.path.join(FIX, "models", "tiny-baichuan2", "model.safetensors"))
    by_name = dict(source)
    for name, array in source:
        if ".layers.0." in name:
            continue
        if ".layers.1." in name:
            for l in range(32):
                src = by_name[name.replace(".layers.1.", f".layers.{l % 2}.")]
                w = src + 0.02 * rng.randn(*src.shape)
                if name.endswith(("o_proj.weight", "down_proj.weight")):
                    w = w * 0.35
                tensors.append((name.replace(".layers.1.", f".layers.{l}."), w))
            continue
        tensors.append((name, array))
    write_safetensors(os.path.join(out, "model.safetensors"), tensors, dtype="F16")
    # tiny-olmoe with its 2 key/value heads repeated into 4 (llama.cpp's olmoe has no grouped keys): the same model,
    # as each key head's norm weights repeat too and the norm's mean square over repeated features is unchanged.
    out, config = copy_model("tiny-olmoe", "tiny-olmoe-mha", {"num_key_value_heads": 4})
    d = config["hidden_size"] // config["num_attention_heads"]
    group = config["num_attention_heads"] // 2
    tensors = []
    for name, array in read_safetensors(os.path.join(FIX, "models", "tiny-olmoe", "model.safetensors")):
        if name.endswith(("k_proj.weight", "v_proj.weight")):
            array = np.repeat(array.reshape(2, d, -1), group, axis=0).reshape(-1, array.shape[-1])
        elif name.endswith("k_norm.weight"):
            array = np.repeat(array.reshape(2, d), group, axis=0).reshape(-1)
        tensors.append((name, array))
    write_safetensors(os.path.join(out, "model.safetensors"), tensors)
    out, config = copy_model("tiny-qwen2-moe", "tiny-qwen2-moe-sparse", {"mlp_only_layers": []})
    rng = np.random.RandomState(7)
    tensors = []
    source = read_safetensors(os.path.join(FIX, "models", "tiny-qwen2-moe", "model.safetensors"))
    for name, array in source:
        if ".layers.1.mlp." in name:
            continue
        tensors.append((name, array))
        if ".layers.0.mlp." in name:
            tensors.append((name.replace(".layers.0.", ".layers.1."), array + 0.05 * rng.randn(*array.shape)))
    write_safetensors(os.path.join(out, "model.safetensors"), tensors)
    rope = dict(json.load(open(os.path.join(FIX, "models", "tiny-phi3", "config.json")))["rope_parameters"])
    rope["original_max_position_embeddings"] = 256
    copy_model("tiny-phi3", "tiny-phi-longrope", {"sliding_window": None, "max_position_embeddings": 256,
                                                "original_max_position_embeddings": 256, "rope_parameters": rope})


def write_random_decoder(out, rng, H, I, L, V, qkv_rows, biases, dtype):
    """model.safetensors of a random Llama/Qwen2-layout decoder in `out`, written by hand (no torch): untied head,
    q/k/v/o projections with qkv_rows [(name, rows)] (and biases on q/k/v when `biases`), SwiGLU MLP, in `dtype` (F16 or F32)."""

    def mat(rows, cols):
        return rng.randn(rows, cols) / np.sqrt(cols)

    tensors = {"model.embed_tokens.weight": rng.randn(V, H) * 0.5, "lm_head.weight": mat(V, H),
               "model.norm.weight": 1 + 0.2 * rng.randn(H)}
    for l in range(L):
        p = f"model.layers.{l}."
        tensors[p + "input_layernorm.weight"] = 1 + 0.2 * rng.randn(H)
        tensors[p + "post_attention_layernorm.weight"] = 1 + 0.2 * rng.randn(H)
        for name, rows in qkv_rows + [("o_proj", H)]:
            tensors[p + f"self_attn.{name}.weight"] = mat(rows, H)
            if biases and name != "o_proj":
                tensors[p + f"self_attn.{name}.bias"] = 0.1 * rng.randn(rows)
        tensors[p + "mlp.gate_proj.weight"] = mat(I, H)
        tensors[p + "mlp.up_proj.weight"] = mat(I, H)
        tensors[p + "mlp.down_proj.weight"] = mat(H, I)
    write_safetensors(os.path.join(out, "model.safetensors"), [(name, tensors[name]) for name in sorted(tensors)], dtype)


SP_MODEL = "tiny-llama-sp"
SP_TEXTS = ["Hello world", " leading space and  two spaces", "The quick brown fox jumps over the lazy dog.",
            "问：六味地黄丸的功效是什么？", "tabs\tand\nnew lines\n\n", "Ünïcödé àccents ñ ç ø å 😀", "x",
            "1234567 + 89 = 1234656", "<s> is text here, not a control token"]


def write_sp_model():
    """Writes Tests/Fixtures/models/tiny-llama-sp: config, f32 safetensors written by hand, tokenizer.model."""
    out = os.path.join(FIX, "models", SP_MODEL)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(FIX, "tokenizers", "sp-llama", "tokenizer.model"), "rb") as f, \
            open(os.path.join(out, "tokenizer.model"), "wb") as g:
        g.write(f.read())
    H, I, L, V, heads, kv = 64, 128, 2, 800, 4, 2
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": H, "intermediate_size": I,
              "num_hidden_layers": L, "num_attention_heads": heads, "num_key_value_heads": kv, "head_dim": H // heads,
              "hidden_act": "silu", "max_position_embeddings": 256, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
              "vocab_size": V, "bos_token_id": 1, "eos_token_id": 2, "tie_word_embeddings": False,
              "attention_bias": False, "mlp_bias": False, "dtype": "float32"}
    json.dump(config, open(os.path.join(out, "config.json"), "w"), indent=2)
    json.dump({"tokenizer_class": "LlamaTokenizer", "add_bos_token": True, "add_eos_token": False,
               "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "legacy": False,
               "model_max_length": 256}, open(os.path.join(out, "tokenizer_config.json"), "w"), indent=2)
    D = H // heads
    write_random_decoder(out, np.random.RandomState(23), H, I, L, V,
                         [("q_proj", heads * D), ("k_proj", kv * D), ("v_proj", kv * D)], biases=False, dtype="F32")

def greedy_runs(path):
    """llama.cpp's 16 greedy tokens after each prompt and its logits at the last prompt position."""
    llm = llama_cpp.Llama(model_path=path, n_ctx=256, n_threads=2, logits_all=True, verbose=False)
    runs = []
    for prompt in PROMPTS:
        llm.reset()
        llm.eval(prompt)
        first = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32).tolist()
        tokens = []
        for _ in range(16):
            t = int(np.argmax(llm.scores[llm.n_tokens - 1]))
            tokens.append(t)
            llm.eval([t])
        runs.append({"tokens": tokens, "logits": first})
    return llm, runs


def sentencepiece_fixture(llama_src, convert_python):
    """The SentencePiece model through llama.cpp's converter and quantizer (see the module docstring)."""
    write_sp_model()
    f32 = os.path.join(FIX, "gguf", f"{SP_MODEL}-f32.gguf")
    env = dict(os.environ, PYTHONPATH=os.path.join(llama_src, "gguf-py"))
    subprocess.run([convert_python, os.path.join(llama_src, "convert_hf_to_gguf.py"), os.path.join(FIX, "models", SP_MODEL),
                    "--outtype", "f32", "--outfile", f32], check=True, env=env)
    golden = {"llama_cpp_version": llama_cpp.__version__, "prompts": PROMPTS, "texts": SP_TEXTS, "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        q8 = os.path.join(tmp, "q8_0.gguf")
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0
        assert llama_cpp.llama_model_quantize(f32.encode(), q8.encode(), params) == 0
        for key, path in [("f32", f32), ("q8_0", q8)]:
            llm, runs = greedy_runs(path)
            golden["runs"][key] = runs
        # Control tokens written in the text are parsed, as Hugging Face's tokenizer and a chat prompt parse them.
        golden["ids"] = [llm.tokenize(t.encode(), add_bos=True, special=True) for t in SP_TEXTS]
    out = os.path.join(FIX, "gguf", "llamacpp-sp.json")
    json.dump(golden, open(out, "w"))
    print("wrote", out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--peft-binary", required=True)
    ap.add_argument("--llama-src", required=True, help="llama.cpp's source tree (convert_hf_to_gguf.py, gguf-py)")
    ap.add_argument("--convert-python", default="python3", help="a Python with torch and sentencepiece, for the converter")
    ap.add_argument("--only-sp", action="store_true", help="only the SentencePiece model's fixture")
    ap.add_argument("--only", nargs="*", help="only these run keys, updated in the existing llamacpp.json")
    args = ap.parse_args()
    out = os.path.join(FIX, "gguf", "llamacpp.json")
    if not args.only:
        sentencepiece_fixture(args.llama_src, args.convert_python)
    if args.only_sp:
        return
    golden = {"llama_cpp_version": llama_cpp.__version__, "prompts": PROMPTS, "runs": {}}
    write_gemma2_variant()
    write_family_variants()
    if args.only:
        golden = json.load(open(out))
    else:
        write_k_model()
    cases = [("q8_0", "tiny-qwen2", "q8_0"), ("q4_0", "tiny-qwen2", "q4_0"),
             ("tiny-llama/q8_0", "tiny-llama", "q8_0"), ("tiny-qwen3/q8_0", "tiny-qwen3", "q8_0"),
             # Qwen v1 (llama.cpp's `qwen`): fused attn_qkv with its bias, w1/w2 as ffn_up/ffn_gate.
             ("tiny-qwen1/q8_0", "tiny-qwen1", "q8_0"),
             # Qwen3-MoE (llama.cpp's `qwen3moe`): router f32, experts stacked in ffn_{gate,up,down}_exps.
             ("tiny-qwen3-moe/q8_0", "tiny-qwen3-moe", "q8_0"),
             # Qwen2-MoE (`qwen2moe`): per-expert matrices stacked into ffn_*_exps, the shared expert and its sigmoid
             # gate (ffn_*_shexp, ffn_gate_inp_shexp), top 2 not renormalised; every layer sparse (write_family_variants).
             ("tiny-qwen2-moe-sparse/q8_0", "tiny-qwen2-moe-sparse", "q8_0"),
             # OLMoE (`olmoe`): q/k norms across all heads, experts stacked, top 2 not renormalised; MHA, as llama.cpp
             # norms keys over n_embd features (see write_family_variants).
             ("tiny-olmoe-mha/q8_0", "tiny-olmoe-mha", "q8_0"),
             # Gemma 3 (`gemma3`): norms shifted to their scales, post norms, q/k norms, local rope base, window pattern.
             ("tiny-gemma3/q8_0", "tiny-gemma3", "q8_0"),
             # Gemma 2 (`gemma2`): attention and final soft-capping, layer 0 a window of 4. In f16: its soft-caps of
             # 2 and 3 make q8_0's rounding move logits by ~4% of their scale on either side.
             ("tiny-gemma2-s16/f16", "tiny-gemma2-s16", "f16"),
             # Phi-3 (`phi3`): fused attn_qkv and ffn_up, partial rotary (0.75), LongRoPE's short factors as tensors.
             ("tiny-phi-longrope/q8_0", "tiny-phi-longrope", "q8_0"),
             # InternLM2 (`internlm2`): grouped wqkv cut into attn_q/k/v and reordered for pair rotation, GQA.
             ("tiny-internlm2/q8_0", "tiny-internlm2", "q8_0"),
             # InternLM3 (as `llama`): head_dim 32 != hidden / heads. In f16: llama.cpp's own q8_0 file of it moves the logits by
             # 2-4% of their scale from its f16 file.
             ("tiny-internlm3/f16", "tiny-internlm3", "f16"),
             # GLM (`chatglm`) and GLM-4-0414 (`glm4`, post norms): half the head rotated in pairs, q/k/v biases.
             ("tiny-glm/q8_0", "tiny-glm", "q8_0"), ("tiny-glm4/q8_0", "tiny-glm4", "q8_0"),
             # GLM-4's remote-code layout (`chatglm` with a fused attn_qkv, as llama.cpp's converter writes it); in f16,
             # as q8_0 makes a near-tie of its first greedy token.
             ("tiny-chatglm/f16", "tiny-chatglm", "f16"),
             # Baichuan2-7B's layout (`baichuan`, 32 layers): W_pack cut and reordered, NormHead rows normalised.
             ("tiny-baichuan2-32/f16", "tiny-baichuan2-32", "f16"),
             # Baichuan2-13B's (`baichuan`, 40 layers): ALiBi positions over 6 heads (llama.cpp's max_alibi_bias 8).
             ("tiny-baichuan2-13b/f16", "tiny-baichuan2-13b", "f16")]
    cases += [(f"{K_MODEL}/{t}", K_MODEL, t) for t in K_TYPES]
    for key, model, kind in cases:
        if args.only and key not in args.only:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, f"{model}-{kind}.gguf")
            subprocess.run([args.peft_binary, "quantize", "--model", os.path.join(FIX, "models", model),
                            "--type", kind, "--output", path], check=True)
            _, golden["runs"][key] = greedy_runs(path)
    json.dump(golden, open(out, "w"))
    print("wrote", out)


if __name__ == "__main__":
    main()
