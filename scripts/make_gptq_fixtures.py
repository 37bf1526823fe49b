#!/usr/bin/env python3
"""Tiny GPTQ checkpoints (the layout of Qwen's GPTQ-Int4 releases: 4 bits, symmetric; without and with act-order)
and the logits transformers computes with its documented dequantization, w = scale[g_idx] * (q - (zero + 1)).

    python3 scripts/make_gptq_fixtures.py
Needs: torch, transformers, safetensors. From Tests/Fixtures/models/tiny-qwen2 it writes
  - models/tiny-qwen2-gptq: every projection as qweight / qzeros / scales / g_idx (group size 32, since the tiny
    model's rows hold 64 or 128 weights; Qwen's releases use 128), bias and the rest in f16, and the
    `quantization_config` of config.json;
  - models/tiny-qwen2-gptq-actorder: the same with desc_act true: each projection's inputs assigned to groups by a
    seeded random permutation (g_idx[perm[p]] = p // 32), as GPTQ's activation order leaves them;
  - golden/tiny-qwen2-gptq.json and golden/tiny-qwen2-gptq-actorder.json: transformers' float32 logits of the
    dequantized models for two sequences.
"""
import json
import os
import shutil

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FIX = os.path.join(ROOT, "Tests", "Fixtures")
SRC = os.path.join(FIX, "models", "tiny-qwen2")
GROUP = 32
PROJ = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def pack_rows(q):  # q [in, out] uint8 0..15 -> [in // 8, out] int32, value i*8+j at bits 4j
    q = q.astype(np.uint32).reshape(q.shape[0] // 8, 8, q.shape[1])
    out = np.zeros((q.shape[0], q.shape[2]), dtype=np.uint32)
    for j in range(8):
        out |= q[:, j, :] << np.uint32(4 * j)
    return out.view(np.int32)


def pack_cols(z):  # z [groups, out] -> [groups, out // 8] int32, value c*8+j at bits 4j
    z = z.astype(np.uint32).reshape(z.shape[0], z.shape[1] // 8, 8)
    out = np.zeros((z.shape[0], z.shape[1]), dtype=np.uint32)
    for j in range(8):
        out |= z[:, :, j] << np.uint32(4 * j)
    return out.view(np.int32)


def build(model_name, act_order):
    OUT = os.path.join(FIX, "models", model_name)
    rng = np.random.RandomState(11)
    shutil.rmtree(OUT, ignore_errors=True)
    shutil.copytree(SRC, OUT, ignore=shutil.ignore_patterns("*.safetensors"))
    tensors = load_file(os.path.join(SRC, "model.safetensors"))
    out, deq = {}, {}
    for name, t in tensors.items():
        module = name.rsplit(".", 1)[0]
        if name.endswith(".weight") and module.split(".")[-1] in PROJ:
            w = t.float().numpy().T.copy()                     # [in, out]
            n_in, n_out = w.shape
            g_idx = np.arange(n_in) // GROUP
            if act_order:
                perm = rng.permutation(n_in)
                g_idx = np.empty(n_in, dtype=np.int64)
                g_idx[perm] = np.arange(n_in) // GROUP
            groups = n_in // GROUP
            scale = np.stack([np.abs(w[g_idx == g]).max(axis=0) / 7.0 for g in range(groups)]).astype(np.float16)
            s32 = np.maximum(scale.astype(np.float32), 1e-8)[g_idx]          # [in, out]
            q = np.clip(np.round(w / s32) + 8, 0, 15).astype(np.uint8)
            zeros = np.full((groups, n_out), 7, dtype=np.uint8)              # stored zero + 1 = 8: symmetric
            out[module + ".qweight"] = torch.from_numpy(pack_rows(q))
            out[module + ".qzeros"] = torch.from_numpy(pack_cols(zeros))
            out[module + ".scales"] = torch.from_numpy(scale)
            out[module + ".g_idx"] = torch.from_numpy(g_idx.astype(np.int32))
            # The documented dequantization: w = scale[g_idx] * (q - (zero + 1)).
            w_deq = scale.astype(np.float32)[g_idx] * (q.astype(np.float32) - 8.0)
            deq[name] = torch.from_numpy(w_deq.T.copy())
        else:
            out[name] = t.to(torch.float16)
            deq[name] = t.to(torch.float16).float()
    save_file(out, os.path.join(OUT, "model.safetensors"), metadata={"format": "pt"})
    config = json.load(open(os.path.join(SRC, "config.json")))
    config["quantization_config"] = {"bits": 4, "group_size": GROUP, "desc_act": act_order, "sym": True,
                                     "quant_method": "gptq", "checkpoint_format": "gptq", "true_sequential": True,
                                     "damp_percent": 0.01}
    config["dtype"] = "float16"
    json.dump(config, open(os.path.join(OUT, "config.json"), "w"), indent=2)
    # Reference: the dequantized weights in an ordinary float32 model.
    model = AutoModelForCausalLM.from_pretrained(SRC, dtype=torch.float32)
    model.load_state_dict({k: v.float() for k, v in deq.items()}, strict=False)
    model.eval()
    seqs = [[301, 17, 42, 99, 3, 302, 198, 301], [5, 6, 7, 8, 9]]
    with torch.no_grad():
        logits = [model(torch.tensor([s])).logits[0].flatten().tolist() for s in seqs]
    json.dump({"sequences": seqs, "logits": logits}, open(os.path.join(FIX, "golden", model_name + ".json"), "w"))
    print("wrote", OUT)


def main():
    build("tiny-qwen2-gptq", act_order=False)
    build("tiny-qwen2-gptq-actorder", act_order=True)


if __name__ == "__main__":
    main()
