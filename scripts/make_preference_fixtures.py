#!/usr/bin/env python3
"""Preference-loss fixtures from TRL 1.16 on given sequence log-probabilities: the loss of each pair, its gradient in
the policy's chosen and rejected log-probabilities (autograd) and the logged rewards.

    python3 scripts/make_preference_fixtures.py
Needs: torch, trl. Writes golden/preference-losses.json. ORPO and SimPO go through TRL's own
`ORPOTrainer.odds_ratio_loss` and `CPOTrainer.cpo_loss` (loss_type simpo); DPO's sigmoid, hinge, ipo and robust losses
are inline in `DPOTrainer._compute_loss`, restated here term for term (ipo on the per-token log-ratios).
"""
import json
import os
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from trl.experimental.cpo import CPOTrainer
from trl.experimental.orpo import ORPOTrainer

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
GOLDEN = os.path.join(ROOT, "Tests", "Fixtures", "golden")


def dpo(kind, beta, eps, c, r, rc, rr, nc, nr):
    delta = (c - rc) - (r - rr)
    if kind == "sigmoid":
        loss = -F.logsigmoid(beta * delta)
    elif kind == "hinge":
        loss = torch.relu(1 - beta * delta)
    elif kind == "ipo":
        loss = ((c - rc) / nc - (r - rr) / nr - 1 / (2 * beta)) ** 2
    else:
        loss = (-(1 - eps) * F.logsigmoid(beta * delta) + eps * F.logsigmoid(-beta * delta)) / (1 - 2 * eps)
    return loss, beta * (c - rc), beta * (r - rr)


def main():
    g = torch.Generator().manual_seed(3)
    n = 6
    chosen = -torch.rand(n, generator=g, dtype=torch.float64) * 40 - 1
    rejected = -torch.rand(n, generator=g, dtype=torch.float64) * 40 - 1
    ref_c = chosen + torch.randn(n, generator=g, dtype=torch.float64) * 3
    ref_r = rejected + torch.randn(n, generator=g, dtype=torch.float64) * 3
    nc = torch.randint(1, 30, (n,), generator=g).double()
    nr = torch.randint(1, 30, (n,), generator=g).double()
    cases = []
    for kind, beta, eps, gamma in [("sigmoid", 0.1, 0, 0), ("sigmoid", 0.5, 0, 0), ("hinge", 0.1, 0, 0), ("ipo", 0.1, 0, 0),
                                   ("ipo", 0.5, 0, 0), ("robust", 0.1, 0.2, 0), ("simpo", 2.0, 0, 0.5), ("simpo", 2.0, 0.1, 1.0),
                                   ("orpo", 0.1, 0, 0), ("orpo", 1.0, 0, 0)]:
        c = chosen.clone().requires_grad_(True)
        r = rejected.clone().requires_grad_(True)
        if kind in ("simpo", "orpo"):
            ac, ar = c / nc, r / nr
            if kind == "simpo":
                me = SimpleNamespace(beta=beta, alpha=0.0, loss_type="simpo", simpo_gamma=gamma, label_smoothing=eps,
                                     accelerator=SimpleNamespace(device="cpu"))
                loss, cr, rr_ = CPOTrainer.cpo_loss(me, ac, ar)
            else:
                me = SimpleNamespace(beta=beta, accelerator=SimpleNamespace(device="cpu"))
                losses, cr, rr_, _, _ = ORPOTrainer.odds_ratio_loss(me, ac.double(), ar.double())
                loss = -losses
        else:
            loss, cr, rr_ = dpo(kind, beta, eps, c, r, ref_c, ref_r, nc, nr)
        loss.sum().backward()
        cases.append({"loss_type": kind, "beta": beta, "label_smoothing": eps, "simpo_gamma": gamma,
                      "loss": loss.tolist(), "d_chosen": c.grad.tolist(), "d_rejected": r.grad.tolist(),
                      "chosen_rewards": cr.detach().tolist(), "rejected_rewards": rr_.detach().tolist()})
    json.dump({"chosen": chosen.tolist(), "rejected": rejected.tolist(), "ref_chosen": ref_c.tolist(),
               "ref_rejected": ref_r.tolist(), "chosen_tokens": nc.int().tolist(), "rejected_tokens": nr.int().tolist(),
               "cases": cases}, open(os.path.join(GOLDEN, "preference-losses.json"), "w"), indent=1)
    print("wrote", len(cases), "cases")


if __name__ == "__main__":
    main()
