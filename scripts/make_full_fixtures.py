#!/usr/bin/env python3
"""Golden numbers for full and freeze (partial) fine-tuning, from torch autograd on the tiny checkpoints.

Run from the repository root after scripts/make_model_fixtures.py:
    python3 scripts/make_full_fixtures.py [--peft-binary .build/debug/peft]
Needs: torch, transformers (5.x). Writes Tests/Fixtures/full/<arch>.json with
  - loss and the gradient of every parameter (full fine-tuning; tied embeddings are one parameter)
  - freeze: LLaMA-Factory's freeze_trainable_layers=1, freeze_trainable_modules=all, freeze_extra_modules=norm:
    the gradients of exactly those parameters
  - adamw / adafactor: 10 steps (linear warmup 2 / decay, clipping 1.0) of torch.optim.AdamW (weight decay 0.01)
    and of transformers' Adafactor as its Trainer builds it (scale_parameter=False, relative_step=False)
With --peft-binary it also fine-tunes tiny-qwen2 fully with our tool and records the logits transformers computes
with the model directory it wrote (Tests/Fixtures/full/ours-full.json).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys

import torch
from transformers import AutoModelForCausalLM
from transformers.optimization import Adafactor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_peft_fixtures import EXAMPLES, padded_batch, run_trajectory, write_train_data  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FIX = os.path.join(ROOT, "Tests", "Fixtures")
OUT = os.path.join(FIX, "full")


def base(arch):
    return AutoModelForCausalLM.from_pretrained(os.path.join(FIX, "models", arch), dtype=torch.float32)


def flat(t):
    return t.detach().flatten().tolist()


def loss_and_grads(model):
    ids, mask, labels = padded_batch(EXAMPLES[:2])
    loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
    loss.backward()
    return loss.item(), {n: flat(p.grad) for n, p in model.named_parameters() if p.requires_grad}


def freeze(model):
    """LLaMA-Factory's freeze: the last layer's parameters and the final norm train."""
    last = model.config.num_hidden_layers - 1
    for n, p in model.named_parameters():
        p.requires_grad = f".{last}." in n or n == "model.norm.weight"


def trajectory(arch, optimizer):
    torch.manual_seed(0)
    model = base(arch)
    params = list(model.parameters())
    lr = 1e-3
    if optimizer == "adamw":
        opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    else:
        opt = Adafactor(params, lr=lr, scale_parameter=False, relative_step=False)
    batches, losses, norms, _ = run_trajectory(model, params, opt)
    return {"batches": batches, "losses": losses, "grad_norms": norms, "lr": lr, "warmup_steps": 2, "steps": 10,
            "weight_decay": 0.01 if optimizer == "adamw" else 0.0, "max_grad_norm": 1.0}


def ours_case(binary):
    work = os.path.join(ROOT, ".build", "fixture-full")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    data = write_train_data(work)
    out = os.path.join(work, "out")
    subprocess.run([binary, "train", "--model", os.path.join(FIX, "models", "tiny-qwen2-bf16-sharded"), "--data", data,
                    "--output", out, "--method", "full", "--max-steps", "4", "--lr", "1e-2", "--batch-size", "2",
                    "--seed", "3", "--dtype", "float32"], check=True)
    model_dir = os.path.join(OUT, "ours-full-model")   # the model our run wrote, without its log and checkpoints
    shutil.rmtree(model_dir, ignore_errors=True)
    shutil.copytree(out, model_dir, ignore=shutil.ignore_patterns("checkpoint-*", "train_log.jsonl", "peft_merge.json"))
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        logits = [flat(model(torch.tensor([e["ids"]])).logits[0]) for e in EXAMPLES[:2]]
    json.dump({"examples": EXAMPLES[:2], "logits": logits}, open(os.path.join(OUT, "ours-full.json"), "w"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--peft-binary")
    args = ap.parse_args()
    torch.set_num_threads(2)
    os.makedirs(OUT, exist_ok=True)
    if args.peft_binary:
        ours_case(args.peft_binary)
        return
    for arch in ["tiny-qwen2", "tiny-llama"]:
        model = base(arch)
        loss, grads = loss_and_grads(model)
        frozen = base(arch)
        freeze(frozen)
        _, freeze_grads = loss_and_grads(frozen)
        golden = {"examples": EXAMPLES[:2], "loss": loss, "grads": grads, "freeze_grads": freeze_grads,
                  "adamw": trajectory(arch, "adamw"), "adafactor": trajectory(arch, "adafactor")}
        json.dump(golden, open(os.path.join(OUT, f"{arch}.json"), "w"))
    print("wrote", OUT)


if __name__ == "__main__":
    main()
