#!/usr/bin/env python3
"""Preference-tuning trajectories: 10 AdamW steps of a LoRA adapter (PEFT's initial adapter
adapters/tiny-qwen2-train-init on tiny-qwen2) on two fixed batches of two pairs, with the losses as TRL 1.16 computes
them: DPO sigmoid (beta 0.1; the reference is the base model with the adapter disabled, as TRL does with PEFT) and
ORPO (beta 0.1; the chosen answers' mean NLL plus beta x -log sigmoid(log odds ratio) of the mean log-probabilities).
And 10 steps of KTO on eight unpaired answers (two fixed batches of four), restated term for term from TRL 1.16's
`KTOTrainer._compute_loss`: KL sequences pair each prompt with the previous answer of its batch (the first with the
last, as `add_kl_completion_ids` rotates), kl = mean(policy - reference log-ratio) without gradient, clamped at 0;
desirable: 1 - sigmoid(beta (ratio - kl)), undesirable: 1 - sigmoid(beta (kl - ratio)), weighted, averaged.

    python3 scripts/make_dpo_fixtures.py
Needs: torch, transformers, peft. Writes golden/dpo-training.json, golden/orpo-training.json and
golden/kto-training.json: the pairs or answers (token ids and the first answer position), losses, gradient norms,
learning rates, and each step's mean chosen / rejected rewards (and KTO's kl).
"""
import json
import os
import sys

import torch
import torch.nn.functional as F
from peft import PeftModel
from transformers import get_linear_schedule_with_warmup

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_peft_fixtures import ADAPTERS, GOLDEN, base  # noqa: E402

# Pairs: the same prompt, a chosen and a rejected answer (answers and the end of turn 302 trained).
PROMPTS = [[301, 17, 42, 99, 3, 302, 198, 301], [301, 12, 8, 302, 198, 301], [301, 5, 6, 7, 302, 198, 301],
           [301, 200, 201, 302, 198, 301]]
CHOSEN = [[250, 7, 64, 302], [190, 33, 5, 302], [90, 91, 92, 93, 302], [40, 41, 302]]
REJECTED = [[128, 77, 302], [9, 10, 11, 12, 302], [60, 302], [70, 71, 72, 302]]


def logps(model, seqs):
    """Summed log-probabilities of each sequence's answer tokens (right padding)."""
    T = max(len(s["ids"]) for s in seqs)
    ids = torch.tensor([s["ids"] + [300] * (T - len(s["ids"])) for s in seqs])
    mask = torch.tensor([[1] * len(s["ids"]) + [0] * (T - len(s["ids"])) for s in seqs])
    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]
    lp = torch.log_softmax(logits.float(), -1)
    out, counts = [], []
    for b, s in enumerate(seqs):
        tokens = range(s["trainable_from"], len(s["ids"]))
        out.append(sum(lp[b, t - 1, s["ids"][t]] for t in tokens))
        counts.append(len(tokens))
    return torch.stack(out), torch.tensor(counts, dtype=torch.float32)


def start(lr, warmup, steps):
    """PEFT's initial LoRA on tiny-qwen2, trainable, with AdamW and the linear warmup schedule."""
    torch.manual_seed(0)
    model = PeftModel.from_pretrained(base(), os.path.join(ADAPTERS, "tiny-qwen2-train-init"), is_trainable=True)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    return model, params, opt, get_linear_schedule_with_warmup(opt, num_warmup_steps=warmup, num_training_steps=steps)


def update(loss, params, opt, sched):
    """One optimiser step on `loss` (gradients clipped at norm 1); returns the norm before clipping."""
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(params, 1.0).item()
    opt.step()
    sched.step()
    opt.zero_grad()
    return norm


def log1mexp(x):
    return torch.where(x > -0.6931471805599453, torch.log(-torch.expm1(x)), torch.log1p(-torch.exp(x)))


def run(kind, beta=0.1, steps=10, warmup=2, lr=5e-2):
    model, params, opt, sched = start(lr, warmup, steps)
    pairs = [{"chosen": {"ids": p + c, "trainable_from": len(p)}, "rejected": {"ids": p + r, "trainable_from": len(p)}}
             for p, c, r in zip(PROMPTS, CHOSEN, REJECTED)]
    batches = [pairs[0:2], pairs[2:4]]
    losses, norms, lrs, chosen_rewards, rejected_rewards = [], [], [], [], []
    for step in range(steps):
        batch = batches[step % 2]
        seqs = [s for p in batch for s in (p["chosen"], p["rejected"])]
        lrs.append(sched.get_last_lr()[0])
        lp, n = logps(model, seqs)
        c, r = lp[0::2], lp[1::2]
        if kind == "dpo":
            with torch.no_grad(), model.disable_adapter():
                ref, _ = logps(model, seqs)
            rc, rr = ref[0::2], ref[1::2]
            loss = -F.logsigmoid(beta * ((c - rc) - (r - rr))).mean()
            cr, rj = beta * (c - rc), beta * (r - rr)
        else:
            ac, ar = c / n[0::2], r / n[1::2]
            nll = -c.sum() / n[0::2].sum()
            log_odds = (ac - ar) - (log1mexp(ac) - log1mexp(ar))
            loss = nll - (beta * F.logsigmoid(log_odds)).mean()
            cr, rj = beta * ac, beta * ar
        norms.append(update(loss, params, opt, sched))
        losses.append(loss.item())
        chosen_rewards.append(cr.mean().item())
        rejected_rewards.append(rj.mean().item())
    json.dump({"pairs": pairs, "losses": losses, "grad_norms": norms, "lrs": lrs, "lr": lr, "warmup_steps": warmup,
               "steps": steps, "weight_decay": 0.01, "max_grad_norm": 1.0, "beta": beta,
               "chosen_rewards": chosen_rewards, "rejected_rewards": rejected_rewards},
              open(os.path.join(GOLDEN, f"{kind}-training.json"), "w"))
    print(kind, losses)


# KTO: unpaired answers (prompt, answer, desirable).
KTO = [(PROMPTS[0], CHOSEN[0], True), (PROMPTS[1], REJECTED[1], False), (PROMPTS[2], CHOSEN[2], True),
       (PROMPTS[3], REJECTED[3], False), (PROMPTS[0], REJECTED[0], False), (PROMPTS[1], CHOSEN[1], True),
       (PROMPTS[2], REJECTED[2], False), (PROMPTS[3], CHOSEN[3], True)]


def run_kto(beta=0.1, desirable_weight=1.0, undesirable_weight=1.33, steps=10, warmup=2, lr=5e-2):
    model, params, opt, sched = start(lr, warmup, steps)
    answers = [{"ids": p + a, "trainable_from": len(p), "desirable": d} for p, a, d in KTO]
    batches = [answers[0:4], answers[4:8]]
    losses, norms, lrs, chosen_rewards, rejected_rewards, kls = [], [], [], [], [], []
    for step in range(steps):
        batch = batches[step % 2]
        # add_kl_completion_ids: completions rotated by one within the batch.
        completions = [s["ids"][s["trainable_from"]:] for s in batch]
        rotated = [completions[-1]] + completions[:-1]
        kl_seqs = [{"ids": s["ids"][:s["trainable_from"]] + c, "trainable_from": s["trainable_from"]}
                   for s, c in zip(batch, rotated)]
        lrs.append(sched.get_last_lr()[0])
        with torch.no_grad():
            kl_logps, _ = logps(model, kl_seqs)
            with model.disable_adapter():
                ref_kl, _ = logps(model, kl_seqs)
                ref, _ = logps(model, batch)
        kl = (kl_logps - ref_kl).mean().clamp(min=0)
        lp, _ = logps(model, batch)
        desirable = torch.tensor([s["desirable"] for s in batch])
        ratio = lp - ref
        per = torch.where(desirable, desirable_weight * (1 - torch.sigmoid(beta * (ratio - kl))),
                          undesirable_weight * (1 - torch.sigmoid(beta * (kl - ratio))))
        loss = per.mean()
        norms.append(update(loss, params, opt, sched))
        losses.append(loss.item())
        rewards = beta * ratio.detach()
        chosen_rewards.append(rewards[desirable].mean().item())
        rejected_rewards.append(rewards[~desirable].mean().item())
        kls.append(kl.item())
    json.dump({"answers": answers, "losses": losses, "grad_norms": norms, "lrs": lrs, "lr": lr, "warmup_steps": warmup,
               "steps": steps, "weight_decay": 0.01, "max_grad_norm": 1.0, "beta": beta,
               "desirable_weight": desirable_weight, "undesirable_weight": undesirable_weight,
               "chosen_rewards": chosen_rewards, "rejected_rewards": rejected_rewards, "kl": kls},
              open(os.path.join(GOLDEN, "kto-training.json"), "w"))
    print("kto", losses, kls)


if __name__ == "__main__":
    run("dpo")
    run("orpo")
    run_kto()
