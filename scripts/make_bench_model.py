#!/usr/bin/env python3
"""Creates a randomly initialised checkpoint with real model shapes for benchmarks (the cost of a forward
does not depend on the weights). Default: Qwen2.5-0.5B-Instruct shapes, bf16, with the Qwen tokenizer
from ../shared/qwen-tokenizer when present.

    python3 scripts/make_bench_model.py [--shape qwen2.5-0.5b|qwen2.5-1.5b|qwen1.5-1.8b|gemma2-0.5b|qwen3-moe-0.5b|
                                         phi3-0.5b|glm4-0.5b|olmoe-0.5b] [--out DIR]

The gemma2, qwen3-moe, phi3, glm4 and olmoe shapes are other families at the Qwen2.5-0.5B scale (hidden 896, 24 layers, the Qwen
vocabulary), to compare training speed across families on the same footing.
"""
import argparse
import os
import shutil

import torch
from transformers import AutoModelForCausalLM, Gemma2Config, Glm4Config, OlmoeConfig, Phi3Config, Qwen2Config, Qwen3MoeConfig

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
    # OLMoE at the 0.5B-active scale: q/k norms across heads, 16 experts of 768, 4 per token, no renormalisation.
    "olmoe-0.5b": dict(hidden_size=896, intermediate_size=768, num_experts=16, num_experts_per_tok=4,
                       norm_topk_prob=False, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                       vocab_size=151936, max_position_embeddings=32768, tie_word_embeddings=True, rms_norm_eps=1e-5,
                       pad_token_id=151643),
}
CONFIGS = {"gemma2-0.5b": Gemma2Config, "qwen3-moe-0.5b": Qwen3MoeConfig, "phi3-0.5b": Phi3Config,
           "glm4-0.5b": Glm4Config, "olmoe-0.5b": OlmoeConfig}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="qwen2.5-0.5b", choices=sorted(SHAPES))
    ap.add_argument("--out")
    ap.add_argument("--tokenizer", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                                        "shared", "qwen-tokenizer"))
    args = ap.parse_args()
    out = args.out or os.path.join("bench-out", args.shape + "-random")
    if os.path.exists(os.path.join(out, "config.json")):
        print("exists:", out)
        return
    torch.manual_seed(0)
    cfg = CONFIGS.get(args.shape, Qwen2Config)(**SHAPES[args.shape], bos_token_id=151643, eos_token_id=151645)
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
    model.save_pretrained(out)
    if os.path.isdir(args.tokenizer):
        for f in os.listdir(args.tokenizer):
            if f != "README.md":
                shutil.copy(os.path.join(args.tokenizer, f), out)
    with open(os.path.join(out, "generation_config.json"), "w") as f:
        f.write('{"bos_token_id": 151643, "eos_token_id": [151645, 151643], "do_sample": false}\n')
    print("wrote", out)


if __name__ == "__main__":
    main()
