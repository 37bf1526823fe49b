#!/usr/bin/env python3
"""Distillation fixtures from TRL's GKD objective (`GKDTrainer.generalized_jsd_loss`, trl 1.16).

    python3 scripts/make_distill_fixtures.py
Needs: torch, transformers, peft, trl (its experimental GKD trainer). Writes
  - golden/distill-jsd.json: 6 rows of random student and teacher logits over 24 tokens (two rows masked with
    -100), and for beta 0, 0.3, 0.5, 1 at temperatures 1 and 2: TRL's loss (batchmean over the unmasked rows) and
    its gradient with respect to the student's logits (autograd);
  - golden/distill-training.json: 10 AdamW steps of the LoRA student tiny-qwen2 (PEFT's initial adapter in
    adapters/tiny-qwen2-train-init) toward the teacher tiny-qwen2-prune on make_peft_fixtures.py's two batches:
    objective = generalized JSD (beta 0.5, temperature 2) + 0.5 x cross-entropy, both means over the answer tokens;
    the losses, gradient norms, learning rates, and each step's divergence and cross-entropy;
  - models/tiny-qwen2-teacher-v400: a one-layer teacher with tiny-qwen2's tokenizer and a vocabulary padded to 400.
"""
import json
import os
import sys

import torch
import torch.nn.functional as F
from peft import PeftModel
from transformers import AutoModelForCausalLM, get_linear_schedule_with_warmup
from trl.experimental.gkd import GKDTrainer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_peft_fixtures import ADAPTERS, EXAMPLES, FIX, GOLDEN, base, padded_batch  # noqa: E402

jsd = GKDTrainer.generalized_jsd_loss


def rows_case():
    g = torch.Generator().manual_seed(5)
    student = torch.randn(1, 6, 24, generator=g, dtype=torch.float64) * 2
    teacher = torch.randn(1, 6, 24, generator=g, dtype=torch.float64) * 2
    labels = torch.tensor([[3, -100, 7, 1, -100, 20]])
    cases = []
    for beta in [0.0, 0.3, 0.5, 1.0]:
        for temperature in [1.0, 2.0]:
            s = student.clone().requires_grad_(True)
            loss = jsd(s, teacher, labels=labels, beta=beta, temperature=temperature)
            loss.backward()
            cases.append({"beta": beta, "temperature": temperature, "loss": loss.item(),
                          "grad": s.grad[0].flatten().tolist()})
    json.dump({"student": student[0].flatten().tolist(), "teacher": teacher[0].flatten().tolist(),
               "labels": labels[0].tolist(), "vocab": 24, "cases": cases},
              open(os.path.join(GOLDEN, "distill-jsd.json"), "w"))


def training_case(beta=0.5, temperature=2.0, ce_weight=0.5, steps=10, warmup=2, lr=5e-2):
    torch.manual_seed(0)
    student = PeftModel.from_pretrained(base(), os.path.join(ADAPTERS, "tiny-qwen2-train-init"), is_trainable=True)
    teacher = AutoModelForCausalLM.from_pretrained(os.path.join(FIX, "models", "tiny-qwen2-prune"), dtype=torch.float32).eval()
    params = [p for p in student.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    sched = get_linear_schedule_with_warmup(opt, num_warmup_steps=warmup, num_training_steps=steps)
    batches = [EXAMPLES[0:2], EXAMPLES[2:4]]
    losses, norms, lrs, divergences, ces = [], [], [], [], []
    for step in range(steps):
        ids, mask, labels = padded_batch(batches[step % 2])
        lrs.append(sched.get_last_lr()[0])
        logits = student(input_ids=ids, attention_mask=mask).logits
        with torch.no_grad():
            t_logits = teacher(input_ids=ids, attention_mask=mask).logits
        shifted = labels[:, 1:]
        divergence = jsd(logits[:, :-1], t_logits[:, :-1], labels=shifted, beta=beta, temperature=temperature)
        ce = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), shifted.reshape(-1), ignore_index=-100)
        loss = divergence + ce_weight * ce
        loss.backward()
        norms.append(torch.nn.utils.clip_grad_norm_(params, 1.0).item())
        opt.step()
        sched.step()
        opt.zero_grad()
        losses.append(loss.item())
        divergences.append(divergence.item())
        ces.append(ce.item())
    json.dump({"batches": batches, "losses": losses, "grad_norms": norms, "lrs": lrs, "lr": lr, "warmup_steps": warmup,
               "steps": steps, "weight_decay": 0.01, "max_grad_norm": 1.0, "beta": beta, "temperature": temperature,
               "ce_weight": ce_weight, "distill_losses": divergences, "ce_losses": ces},
              open(os.path.join(GOLDEN, "distill-training.json"), "w"))
    print("losses", losses)


def padded_teacher():
    """models/tiny-qwen2-teacher-v400: one layer, the tiny-qwen2 tokenizer, a vocabulary padded to 400 rows (as
    Qwen2.5-7B's 152064 beside 0.5B's 151936): distillation cuts the extra logits."""
    import shutil
    from transformers import AutoConfig
    src = os.path.join(FIX, "models", "tiny-qwen2")
    dst = os.path.join(FIX, "models", "tiny-qwen2-teacher-v400")
    torch.manual_seed(21)
    cfg = AutoConfig.from_pretrained(src)
    cfg.num_hidden_layers = 1
    cfg.layer_types = ["full_attention"]
    cfg.vocab_size = 400
    model = AutoModelForCausalLM.from_config(cfg).float()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" not in name:
                p.copy_(torch.randn_like(p) / p.shape[-1] ** 0.5)
    shutil.rmtree(dst, ignore_errors=True)
    model.save_pretrained(dst)
    for f in ["tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "generation_config.json"]:
        shutil.copy(os.path.join(src, f), os.path.join(dst, f))


if __name__ == "__main__":
    rows_case()
    training_case()
    padded_teacher()
