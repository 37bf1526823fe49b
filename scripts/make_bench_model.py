#!/usr/bin/env python3
"""Creates a randomly initialised checkpoint with real model shapes for benchmarks (the cost of a forward
does not depend on the weights). Default: Qwen2.5-0.5B-Instruct shapes, bf16, with the Qwen tokenizer
from ../shared/qwen-tokenizer when present.

    python3 scripts/make_bench_model.py [--shape qwen2.5-0.5b|qwen2.5-1.5b|qwen1.5-1.8b|gemma2-0.5b|gemma3-0.5b|qwen3-moe-0.5b|
                                         phi3-0.5b|glm-0.5b|glm4-0.5b|olmoe-0.5b] [--out DIR]
    PYTHON scripts/make_bench_model.py --shape qwen1-0.5b|internlm2-0.5b|baichuan2-0.5b --remote-code DIR

The gemma2, gemma3, qwen3-moe, phi3, glm, glm4 and olmoe shapes are other families at the Qwen2.5-0.5B scale (hidden 896, 24 layers, the Qwen
vocabulary), to compare training speed across families on the same footing.

qwen1, internlm2 and baichuan2 are the remote-code families (Qwen v1's `QWenLMHeadModel`, InternLM2, Baichuan2-7B) at
the same scale. transformers has no class of its own for them: the checkpoint is built by the family's published
remote code (`configuration_*.py`, `modeling_*.py` and what they import, as a downloaded checkpoint of the family holds
them) from the folder given by --remote-code, which is copied into the checkpoint so that `trust_remote_code` finds
it. Those files were written for transformers 4.3x-4.4x; run this script, and bench.py's peer (`--peer-python`), with
a Python that has such a transformers, e.g. a venv made with `--system-site-packages` and `pip install
'transformers==4.46.3' 'peft==0.13.2' einops transformers_stream_generator`.
"""
import argparse
import json
import os
import shutil
import sys

import torch
import transformers
from transformers import AutoConfig, AutoModelForCausalLM

SHAPES = {
    "qwen2.5-0.5b": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                         num_key_value_heads=2, vocab_size=151936, max_position_embeddings=32768,
                         rope_theta=1000000.0, tie_word_embeddings=True, rms_norm_eps=1e-6),
    # Every matrix a whole number of 256-weight super-blocks (hidden 1536, intermediate 8960): the k-quants apply
    # without fallbacks.
    "qwen2.5-1.5b": dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                         num_key_value_heads=2, vocab_size=151936, max_position_embeddings=32768,
                         rope_theta=1000000.0, tie_word_embeddings=True, rms_norm_eps=1e-6),
    "qwen1.5-1.8b": dict(hidden_size=2048, intermediate_size=5504, num_hidden_layers=24, num_attention_heads=16,
                         num_key_value_heads=16, vocab_size=151936, max_position_embeddings=32768,
                         rope_theta=1000000.0, tie_word_embeddings=False, rms_norm_eps=1e-6),
    # Gemma 2 at the 0.5B scale: sandwich norms, GELU-tanh, soft-capping, alternating 4096-token windows.
    "gemma2-0.5b": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                        num_key_value_heads=2, head_dim=64, query_pre_attn_scalar=64, vocab_size=151936,
                        max_position_embeddings=8192, tie_word_embeddings=True, rms_norm_eps=1e-6),
    # Gemma 3 (text) at the 0.5B scale: q/k norms, five 512-token local layers to one global, local base 1e4,
    # global 1e6 (Gemma 3 1B's pattern and window).
    "gemma3-0.5b": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                        num_key_value_heads=2, head_dim=64, query_pre_attn_scalar=64, vocab_size=151936,
                        max_position_embeddings=32768, sliding_window=512, tie_word_embeddings=True,
                        rms_norm_eps=1e-6, pad_token_id=151643),
    # Qwen3-MoE at the 0.5B-active scale: 16 experts of 768, 4 per token.
    "qwen3-moe-0.5b": dict(hidden_size=896, intermediate_size=4864, moe_intermediate_size=768, num_experts=16,
                           num_experts_per_tok=4, norm_topk_prob=True, num_hidden_layers=24, num_attention_heads=14,
                           num_key_value_heads=2, head_dim=64, vocab_size=151936, max_position_embeddings=32768,
                           rope_theta=1000000.0, tie_word_embeddings=True, rms_norm_eps=1e-6),
    # Phi-3 at the 0.5B scale: fused qkv_proj and gate_up_proj, no window.
    "phi3-0.5b": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                      num_key_value_heads=2, vocab_size=151936, max_position_embeddings=32768, rope_theta=10000.0,
                      tie_word_embeddings=True, rms_norm_eps=1e-5, pad_token_id=151643),
    # GLM-4-0414 at the 0.5B scale: half-head pair rotary, q/k/v bias, fused gate_up_proj, post norms.
    "glm4-0.5b": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                      num_key_value_heads=2, head_dim=64, partial_rotary_factor=0.5, attention_bias=True,
                      vocab_size=151936, max_position_embeddings=32768, tie_word_embeddings=True, rms_norm_eps=1e-5,
                      pad_token_id=151643),
    # GLM-4-9B-chat-hf's layout (`glm`) at the 0.5B scale: half-head pair rotary, q/k/v bias, fused gate_up_proj.
    "glm-0.5b": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                     num_key_value_heads=2, head_dim=64, partial_rotary_factor=0.5, attention_bias=True,
                     vocab_size=151936, max_position_embeddings=32768, tie_word_embeddings=True, rms_norm_eps=1e-5,
                     pad_token_id=151643),
    # OLMoE at the 0.5B-active scale: q/k norms across heads, 16 experts of 768, 4 per token, no renormalisation.
    "olmoe-0.5b": dict(hidden_size=896, intermediate_size=768, num_experts=16, num_experts_per_tok=4,
                       norm_topk_prob=False, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                       vocab_size=151936, max_position_embeddings=32768, tie_word_embeddings=True, rms_norm_eps=1e-5,
                       pad_token_id=151643),
}
# transformers' config class of each shape (by name: older transformers, which the remote-code shapes need, lack some).
CONFIGS = {"gemma2-0.5b": "Gemma2Config", "gemma3-0.5b": "Gemma3TextConfig", "qwen3-moe-0.5b": "Qwen3MoeConfig",
           "phi3-0.5b": "Phi3Config", "glm-0.5b": "GlmConfig", "glm4-0.5b": "Glm4Config", "olmoe-0.5b": "OlmoeConfig"}

# The remote-code families: each one's config.json as its published checkpoints write it, at the 0.5B scale.
REMOTE = {
    # Qwen v1: intermediate_size is twice the width of w1 / w2 (each 4864), no grouped heads, untied head.
    "qwen1-0.5b": dict(architectures=["QWenLMHeadModel"], model_type="qwen",
                       auto_map={"AutoConfig": "configuration_qwen.QWenConfig",
                                 "AutoModelForCausalLM": "modeling_qwen.QWenLMHeadModel"},
                       vocab_size=151936, hidden_size=896, intermediate_size=9728, num_hidden_layers=24,
                       num_attention_heads=14, kv_channels=64, emb_dropout_prob=0.0, attn_dropout_prob=0.0,
                       layer_norm_epsilon=1e-6, initializer_range=0.02, max_position_embeddings=8192, seq_length=8192,
                       scale_attn_weights=True, use_cache=True, bf16=False, fp16=False, fp32=True,
                       use_flash_attn=False, rotary_pct=1.0, rotary_emb_base=10000, use_dynamic_ntk=True,
                       use_logn_attn=True, no_bias=True, tie_word_embeddings=False, use_cache_quantization=False,
                       use_cache_kernel=False, softmax_in_fp32=False),
    "internlm2-0.5b": dict(architectures=["InternLM2ForCausalLM"], model_type="internlm2", attn_implementation="eager",
                           auto_map={"AutoConfig": "configuration_internlm2.InternLM2Config",
                                     "AutoModelForCausalLM": "modeling_internlm2.InternLM2ForCausalLM",
                                     "AutoModel": "modeling_internlm2.InternLM2ForCausalLM"},
                           vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                           num_attention_heads=14, num_key_value_heads=2, hidden_act="silu",
                           max_position_embeddings=32768, rms_norm_eps=1e-5, rope_scaling=None, rope_theta=1000000,
                           bias=False, tie_word_embeddings=False, use_cache=True, initializer_range=0.02),
    # Baichuan2-7B's layout (rotary, W_pack, NormHead); 24 layers, so no ALiBi (that is the 40-layer 13B).
    "baichuan2-0.5b": dict(architectures=["BaichuanForCausalLM"], model_type="baichuan",
                           auto_map={"AutoConfig": "configuration_baichuan.BaichuanConfig",
                                     "AutoModelForCausalLM": "modeling_baichuan.BaichuanForCausalLM"},
                           vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                           num_attention_heads=14, hidden_act="silu", max_position_embeddings=4096,
                           model_max_length=4096, rms_norm_eps=1e-6, initializer_range=0.02,
                           tie_word_embeddings=False, use_cache=True, z_loss_weight=0),
}


def remote_model(shape, code_dir, out):
    """The remote-code family's model, built by its own code (copied from code_dir into out first)."""
    os.makedirs(out, exist_ok=True)
    for f in os.listdir(code_dir):
        if f.endswith(".py"):
            shutil.copy(os.path.join(code_dir, f), out)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(dict(REMOTE[shape], bos_token_id=151643, eos_token_id=151645, pad_token_id=151643), f, indent=2)
    cfg = AutoConfig.from_pretrained(out, trust_remote_code=True)
    return AutoModelForCausalLM.from_config(cfg, trust_remote_code=True, torch_dtype=torch.bfloat16)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="qwen2.5-0.5b", choices=sorted(SHAPES) + sorted(REMOTE))
    ap.add_argument("--remote-code", metavar="DIR", help="for the remote-code shapes: the family's *.py files")
    ap.add_argument("--out")
    ap.add_argument("--tokenizer", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                                        "shared", "qwen-tokenizer"))
    args = ap.parse_args()
    # transformers names a remote-code module after its folder, which must hold no dot.
    name = args.shape.replace(".", "_") if args.shape in REMOTE else args.shape
    out = args.out or os.path.join("bench-out", name + "-random")
    if os.path.exists(os.path.join(out, "config.json")):
        print("exists:", out)
        return
    torch.manual_seed(0)
    if args.shape in REMOTE:
        if not args.remote_code:
            sys.exit(f"{args.shape} is built by its family's remote code: give --remote-code DIR")
        model = remote_model(args.shape, args.remote_code, out)
        model.config.torch_dtype = torch.bfloat16
    else:
        config_class = getattr(transformers, CONFIGS.get(args.shape, "Qwen2Config"))
        cfg = config_class(**SHAPES[args.shape], bos_token_id=151643, eos_token_id=151645)
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
    model.save_pretrained(out)
    if os.path.isdir(args.tokenizer):
        for f in os.listdir(args.tokenizer):
            if f != "README.md":
                shutil.copy(os.path.join(args.tokenizer, f), out)
        if args.shape in REMOTE:
            # A tokenizer class and template the older transformers reads too (the same tokenizer.json).
            path = os.path.join(out, "tokenizer_config.json")
            tc = json.load(open(path))
            tc["tokenizer_class"] = "PreTrainedTokenizerFast"
            tc["chat_template"] = open(os.path.join(args.tokenizer, "chat_template.jinja")).read()
            tc["additional_special_tokens"] = tc.pop("extra_special_tokens", [])
            json.dump(tc, open(path, "w"), indent=2, ensure_ascii=False)
    with open(os.path.join(out, "generation_config.json"), "w") as f:
        f.write('{"bos_token_id": 151643, "eos_token_id": [151645, 151643], "do_sample": false}\n')
    print("wrote", out)


if __name__ == "__main__":
    main()
