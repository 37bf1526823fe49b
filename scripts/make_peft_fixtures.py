#!/usr/bin/env python3
"""Golden numbers for the LoRA adapter and training tests, from Python PEFT + torch.

Run from the repository root after scripts/make_model_fixtures.py:
    python3 scripts/make_peft_fixtures.py [--peft-binary .build/release/peft]
Needs: torch, transformers (5.x), peft (0.21). Writes Tests/Fixtures/adapters/* and Tests/Fixtures/golden/lora-*.json.

With --peft-binary it also trains a tiny adapter with *our* tool and records what Python PEFT computes with it
(the "our adapter loads in PEFT" round trip).
"""
import argparse
import json
import os
import shutil
import subprocess

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM, get_linear_schedule_with_warmup

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FIX = os.path.join(ROOT, "Tests", "Fixtures")
BASE = os.path.join(FIX, "models", "tiny-qwen2")
ADAPTERS = os.path.join(FIX, "adapters")
GOLDEN = os.path.join(FIX, "golden")
ALL = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

# Two examples: prompt tokens are masked (-100), answer tokens and the end-of-turn (302) are trained.
EXAMPLES = [
    {"ids": [301, 17, 42, 99, 3, 302, 198, 301, 250, 7, 64, 128, 77, 302], "trainable_from": 10},
    {"ids": [301, 12, 8, 302, 198, 301, 190, 33, 5, 302], "trainable_from": 6},
    {"ids": [301, 5, 6, 7, 302, 198, 301, 90, 91, 92, 93, 302], "trainable_from": 7},
    {"ids": [301, 200, 201, 302, 198, 301, 40, 41, 302], "trainable_from": 6},
]


def padded_batch(examples, pad=300):
    """Right-padded input_ids, attention_mask and labels (HF shifts labels inside the model)."""
    T = max(len(e["ids"]) for e in examples)
    ids, mask, labels = [], [], []
    for e in examples:
        n = len(e["ids"])
        ids.append(e["ids"] + [pad] * (T - n))
        mask.append([1] * n + [0] * (T - n))
        labels.append([-100] * e["trainable_from"] + e["ids"][e["trainable_from"]:] + [-100] * (T - n))
    return torch.tensor(ids), torch.tensor(mask), torch.tensor(labels)


def run_trajectory(model, params, opt, steps=10, warmup=2):
    """`steps` optimiser steps alternating the two fixed batches of two examples, with a linear warmup / decay
    schedule and gradient clipping at 1.0 (what every trajectory fixture replays). Returns the batches, losses,
    gradient norms before clipping and learning rates."""
    sched = get_linear_schedule_with_warmup(opt, num_warmup_steps=warmup, num_training_steps=steps)
    batches = [EXAMPLES[0:2], EXAMPLES[2:4]]
    losses, norms, lrs = [], [], []
    for step in range(steps):
        ids, mask, labels = padded_batch(batches[step % 2])
        lrs.append(sched.get_last_lr()[0])
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        norms.append(torch.nn.utils.clip_grad_norm_(params, 1.0).item())
        opt.step()
        sched.step()
        opt.zero_grad()
        losses.append(loss.item())
    return batches, losses, norms, lrs


def base():
    return AutoModelForCausalLM.from_pretrained(BASE, dtype=torch.float32)


def lora_params(model):
    """{PEFT save key: tensor} for every lora parameter, keys as in adapter_model.safetensors."""
    out = {}
    for name, p in model.named_parameters():
        if "lora_" in name:
            out[name.replace(".default", "")] = p
    return out


def gradients_case():
    torch.manual_seed(10)
    model = get_peft_model(base(), LoraConfig(r=4, lora_alpha=8, target_modules=ALL, lora_dropout=0.0,
                                              task_type="CAUSAL_LM"))
    with torch.no_grad():
        for key, p in lora_params(model).items():
            p.copy_(torch.randn(p.shape) * (0.3 if "lora_B" in key else 0.5))
    out = os.path.join(ADAPTERS, "tiny-qwen2-lora-all")
    shutil.rmtree(out, ignore_errors=True)
    model.save_pretrained(out)
    ids, mask, labels = padded_batch(EXAMPLES[:2])
    result = model(input_ids=ids, attention_mask=mask, labels=labels)
    result.loss.backward()
    grads = {k: p.grad.flatten().tolist() for k, p in lora_params(model).items()}
    with torch.no_grad():
        logits = [model(torch.tensor([e["ids"]])).logits[0].flatten().tolist() for e in EXAMPLES[:2]]
    json.dump({"examples": EXAMPLES[:2], "loss": result.loss.item(), "grads": grads, "logits": logits},
              open(os.path.join(GOLDEN, "lora-gradients.json"), "w"))


def rslora_case():
    torch.manual_seed(11)
    model = get_peft_model(base(), LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"],
                                              use_rslora=True, lora_dropout=0.1, task_type="CAUSAL_LM"))
    with torch.no_grad():
        for key, p in lora_params(model).items():
            p.copy_(torch.randn(p.shape) * 0.3)
    out = os.path.join(ADAPTERS, "tiny-qwen2-rslora-qv")
    shutil.rmtree(out, ignore_errors=True)
    model.save_pretrained(out)
    model.eval()
    with torch.no_grad():
        logits = [model(torch.tensor([e["ids"]])).logits[0].flatten().tolist() for e in EXAMPLES[:2]]
        merged = model.merge_and_unload()
        merged_logits = [merged(torch.tensor([e["ids"]])).logits[0].flatten().tolist() for e in EXAMPLES[:2]]
    json.dump({"examples": EXAMPLES[:2], "logits": logits, "merged_logits": merged_logits},
              open(os.path.join(GOLDEN, "lora-rslora.json"), "w"))


def training_case():
    """10 AdamW steps, linear warmup/decay schedule, grad clipping 1.0, batch 2, no dropout, PEFT default init."""
    torch.manual_seed(12)
    model = get_peft_model(base(), LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj"],
                                              lora_dropout=0.0, task_type="CAUSAL_LM"))
    out = os.path.join(ADAPTERS, "tiny-qwen2-train-init")
    shutil.rmtree(out, ignore_errors=True)
    model.save_pretrained(out)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=5e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    batches, losses, norms, lrs = run_trajectory(model, params, opt)
    final = {k: p.detach().flatten().tolist() for k, p in lora_params(model).items()}
    json.dump({"batches": batches, "losses": losses, "lrs": lrs, "grad_norms": norms, "final": final,
               "lr": 5e-2, "warmup_steps": 2, "steps": 10, "weight_decay": 0.01, "max_grad_norm": 1.0},
              open(os.path.join(GOLDEN, "lora-training.json"), "w"))


def write_train_data(work):
    """The three Alpaca records every fixture run of our tool trains on; returns the file's path."""
    data = os.path.join(work, "train.jsonl")
    with open(data, "w") as f:
        for q, a in [("你好", "你好！"), ("2+2?", "4"), ("hello", "hi there")]:
            f.write(json.dumps({"instruction": q, "input": "", "output": a}, ensure_ascii=False) + "\n")
    return data


def keep_adapter_only(out):
    """Removes what a training run writes beside the adapter: its checkpoints and its log."""
    for extra in os.listdir(out):
        path = os.path.join(out, extra)
        if extra.startswith("checkpoint-"):
            shutil.rmtree(path)
        elif extra == "train_log.jsonl":
            os.remove(path)


def roundtrip_case(binary):
    """Our tool trains an adapter; PEFT loads it; the logits PEFT computes become the golden."""
    work = os.path.join(ROOT, ".build", "fixture-roundtrip")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    data = write_train_data(work)
    out = os.path.join(ADAPTERS, "tiny-qwen2-ours")
    shutil.rmtree(out, ignore_errors=True)
    subprocess.run([binary, "train", "--model", BASE, "--data", data, "--output", out, "--lora-r", "4",
                    "--lora-alpha", "8", "--lora-dropout", "0", "--target-modules", "q_proj,k_proj,v_proj,o_proj",
                    "--max-steps", "6", "--lr", "0.05", "--batch-size", "2", "--seed", "3", "--dtype", "float32"],
                   check=True)
    keep_adapter_only(out)
    model = PeftModel.from_pretrained(base(), out)
    model.eval()
    with torch.no_grad():
        logits = [model(torch.tensor([e["ids"]])).logits[0].flatten().tolist() for e in EXAMPLES[:2]]
    json.dump({"examples": EXAMPLES[:2], "logits": logits}, open(os.path.join(GOLDEN, "lora-ours-in-peft.json"), "w"))
    # `peft merge` of that adapter into the bf16 sharded base: transformers loads the result; its logits (the
    # merged weights are bf16) become the golden for our own load of the same merge.
    merged = os.path.join(work, "merged")
    subprocess.run([binary, "merge", "--model", os.path.join(FIX, "models", "tiny-qwen2-bf16-sharded"),
                    "--adapter", out, "--output", merged], check=True)
    m = AutoModelForCausalLM.from_pretrained(merged, dtype=torch.float32).eval()
    with torch.no_grad():
        logits = [m(torch.tensor([e["ids"]])).logits[0].flatten().tolist() for e in EXAMPLES[:2]]
    json.dump({"examples": EXAMPLES[:2], "logits": logits},
              open(os.path.join(GOLDEN, "merge-ours-in-transformers.json"), "w"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--peft-binary")
    args = ap.parse_args()
    torch.set_num_threads(2)
    os.makedirs(ADAPTERS, exist_ok=True)
    gradients_case()
    rslora_case()
    training_case()
    if args.peft_binary:
        roundtrip_case(args.peft_binary)
    print("wrote", ADAPTERS, GOLDEN)


if __name__ == "__main__":
    main()
