#!/usr/bin/env python3
"""Pruning fixtures: a tiny Qwen2 model, calibration token ids, and what the published pruning algorithms make of
them, computed here in float64 with transformers' own modules.

    python3 scripts/make_prune_fixtures.py
Needs: torch, transformers, safetensors. Writes
  - models/tiny-qwen2-prune: 4 layers, hidden 64, intermediate 192 (so SparseGPT's 128-column blocks split the
    down projection), random weights large enough that pruning changes the logits, tiny-qwen2's tokenizer;
  - golden/prune-calibration.json: 6 calibration sequences of token ids (the samples), the layer scores
    (ShortGPT's block influence per layer: the sum over tokens of 1 - cos(input, output); Gromov et al.'s angular
    distance per start layer for blocks of 2: the mean over tokens of arccos(cos(h_l, h_l+2)) / pi, on the
    residual stream, the last layer's output taken before the final norm), and the mean next-token loss over the
    samples before pruning;
  - golden/prune-<method>.safetensors: the mask of every projection (U8, 1 = pruned) after pruning with magnitude,
    wanda and sparsegpt, each unstructured at 0.5 and 2:4 (plus sparsegpt unstructured at 0.3), and the pruned
    weights themselves where SparseGPT updates them (its 0.5 and 2:4 runs); golden/prune-<method>.json with the
    next-token loss of the pruned model over the samples and its logits at the last 3 positions of the first.

The algorithms as their papers' code states them:
  - magnitude: one threshold per matrix, the int(numel * S) smallest |W| zeroed (stable order); N:M zeroes the N
    smallest |W| of every M consecutive inputs of a row.
  - wanda (locuslab/wanda): metric |W_ij| * sqrt(s_j), s_j the running mean over samples of each sample's sum of
    x_j^2 at the projection's input; per output row the int(cols * S) lowest (stable sort) zeroed; N:M as above
    on the metric.
  - sparsegpt (IST-DASLab/sparsegpt): H = 2/N sum x x^T over every token of the N samples; dead inputs (zero
    diagonal) get 1 and their weights 0; damp 0.01 * mean(diag H); Hinv = upper Cholesky of (chol-inverse of H);
    blocks of 128 columns: mask of the block from w^2 / diag(Hinv)^2 <= its int(numel * S)-th smallest, or N:M on
    the same score at every M-th column; the OBS update of the remaining columns.
  - both prune the layers in order; a layer's statistics are taken in one pass over the samples through the layers
    already pruned (its own sublayers unpruned), as the reference scripts do.

Mixture of experts (models/tiny-qwen2-moe: layer 0 sparse with 4 experts, top-2, and a shared expert; layer 1
dense): every expert's gate_proj, up_proj and down_proj and the shared expert's are pruned as their own matrices
(as with transformers 4.x's per-expert Linear modules), each expert's statistics over the rows the router sent to
it (gate/up: those rows of the normed hidden state; down: act(gate) * up of them); the router (mlp.gate) and the
shared expert's gate are left alone. Writes golden/prune-moe-calibration.json (samples, loss before, block
influence, the model without its lowest-influence layer: removed index, logits, loss) and golden/prune-moe-<run>
.safetensors / .json for magnitude, wanda and sparsegpt at 0.5 unstructured and wanda 2:4.
"""
import copy
import json
import math
import os
import shutil

import torch
from safetensors.torch import save_file
from transformers import AutoConfig, AutoModelForCausalLM

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FIX = os.path.join(ROOT, "Tests", "Fixtures")
SRC = os.path.join(FIX, "models", "tiny-qwen2")
DST = os.path.join(FIX, "models", "tiny-qwen2-prune")
GOLD = os.path.join(FIX, "golden")
PROJ = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj",
        "mlp.up_proj", "mlp.down_proj"]


def make_model():
    torch.manual_seed(7)
    cfg = AutoConfig.from_pretrained(SRC)
    cfg.num_hidden_layers = 4
    cfg.intermediate_size = 192
    cfg.layer_types = ["full_attention"] * 4
    cfg.tie_word_embeddings = False
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager").float()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1 + 0.1 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.05 * torch.randn_like(p))
            else:
                p.copy_(torch.randn_like(p) / math.sqrt(p.shape[-1]))
    if os.path.isdir(DST):
        shutil.rmtree(DST)
    model.save_pretrained(DST)
    for f in ["tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "generation_config.json"]:
        shutil.copy(os.path.join(SRC, f), os.path.join(DST, f))
    return AutoModelForCausalLM.from_pretrained(DST, attn_implementation="eager", dtype=torch.float64)


def mean_loss(model, samples):
    total, count = 0.0, 0
    with torch.no_grad():
        for ids in samples:
            logits = model(torch.tensor([ids]), use_cache=False).logits[0]
            lp = torch.log_softmax(logits[:-1], dim=-1)
            total += -lp[torch.arange(len(ids) - 1), torch.tensor(ids[1:])].sum().item()
            count += len(ids) - 1
    return total / count


def linears(layer):
    return {name: layer.get_submodule(name) for name in PROJ}


def accumulate(stats, key, x, kind):
    """One sample's rows x of an input into its running statistic (wanda: the mean over samples of each sample's
    sum of x_j^2; sparsegpt: H = 2/n sum x x^T, rescaled as samples arrive, as the reference scripts do)."""
    x = x.reshape(-1, x.shape[-1]).double()
    s = stats.setdefault(key, {"n": 0, "v": None})
    if kind == "wanda":
        v = (x * x).sum(0)
        if s["v"] is None:
            s["v"] = torch.zeros_like(v)
        s["v"] *= s["n"] / (s["n"] + 1)
        s["n"] += 1
        s["v"] += v / s["n"]
    else:
        if s["v"] is None:
            s["v"] = torch.zeros(x.shape[1], x.shape[1], dtype=torch.float64)
        s["v"] *= s["n"] / (s["n"] + 1)
        s["n"] += 1
        x = math.sqrt(2 / s["n"]) * x
        s["v"] += x.t() @ x


def collect(model, l, samples, kind):
    """One pass over the samples; statistics of layer l's projection inputs (wanda: s_j; sparsegpt: H)."""
    stats = {}
    handles = [m.register_forward_hook(lambda m, a, o, n=n: accumulate(stats, n, a[0], kind))
               for n, m in linears(model.model.layers[l]).items()]
    return hooked_statistics(model, samples, handles, stats)


def hooked_statistics(model, samples, handles, stats):
    """Runs every sample through the model with the statistics hooks `handles` on, removes them, and returns each
    statistic's accumulated value."""
    with torch.no_grad():
        for ids in samples:
            model(torch.tensor([ids]))
    for h in handles:
        h.remove()
    return {k: s["v"] for k, s in stats.items()}


def nm_mask(metric, n, m):
    mask = torch.zeros_like(metric, dtype=torch.bool)
    for i in range(0, metric.shape[1], m):
        idx = torch.topk(metric[:, i:i + m], n, dim=1, largest=False)[1]
        mask.scatter_(1, i + idx, True)
    return mask


def magnitude(w, sparsity, nm):
    metric = w.abs()
    if nm:
        mask = nm_mask(metric, *nm)
    else:
        k = int(w.numel() * sparsity)
        order = torch.sort(metric.flatten(), stable=True)[1]
        mask = torch.zeros(w.numel(), dtype=torch.bool)
        mask[order[:k]] = True
        mask = mask.view_as(w)
    out = w.clone()
    out[mask] = 0
    return out


def wanda(w, s, sparsity, nm):
    metric = w.abs() * torch.sqrt(s.reshape(1, -1))
    if nm:
        mask = nm_mask(metric, *nm)
    else:
        mask = torch.zeros_like(metric, dtype=torch.bool)
        idx = torch.sort(metric, dim=-1, stable=True)[1][:, :int(w.shape[1] * sparsity)]
        mask.scatter_(1, idx, True)
    out = w.clone()
    out[mask] = 0
    return out


def sparsegpt(w, H, sparsity, nm, blocksize=128, percdamp=0.01):
    W = w.clone().double()
    H = H.clone()
    cols = W.shape[1]
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    damp = percdamp * torch.mean(torch.diag(H))
    H[range(cols), range(cols)] += damp
    H = torch.linalg.cholesky(H)
    H = torch.cholesky_inverse(H)
    Hinv = torch.linalg.cholesky(H, upper=True)
    n, m = nm if nm else (0, 0)
    for i1 in range(0, cols, blocksize):
        i2 = min(i1 + blocksize, cols)
        W1 = W[:, i1:i2].clone()
        Q1 = torch.zeros_like(W1)
        Err1 = torch.zeros_like(W1)
        Hinv1 = Hinv[i1:i2, i1:i2]
        if n == 0:
            tmp = W1 ** 2 / (torch.diag(Hinv1).reshape((1, -1))) ** 2
            thresh = torch.sort(tmp.flatten())[0][int(tmp.numel() * sparsity)]
            mask1 = tmp <= thresh
        else:
            mask1 = torch.zeros_like(W1, dtype=torch.bool)
        for i in range(i2 - i1):
            col = W1[:, i]
            d = Hinv1[i, i]
            if n != 0 and i % m == 0:
                tmp = W1[:, i:i + m] ** 2 / (torch.diag(Hinv1)[i:i + m].reshape((1, -1))) ** 2
                mask1.scatter_(1, i + torch.topk(tmp, n, dim=1, largest=False)[1], True)
            q = col.clone()
            q[mask1[:, i]] = 0
            Q1[:, i] = q
            err = (col - q) / d
            W1[:, i:] -= err.unsqueeze(1).matmul(Hinv1[i, i:].unsqueeze(0))
            Err1[:, i] = err
        W[:, i1:i2] = Q1
        W[:, i2:] -= Err1.matmul(Hinv[i1:i2, i2:])
    return W


def prune(base, samples, method, sparsity, nm):
    model = copy.deepcopy(base)
    for l in range(len(model.model.layers)):
        stats = None if method == "magnitude" else collect(model, l, samples, method)
        with torch.no_grad():
            for name, lin in linears(model.model.layers[l]).items():
                w = lin.weight.data
                if method == "magnitude":
                    lin.weight.data = magnitude(w, sparsity, nm)
                elif method == "wanda":
                    lin.weight.data = wanda(w, stats[name], sparsity, nm)
                else:
                    lin.weight.data = sparsegpt(w, stats[name], sparsity, nm)
    return model


def layer_scores(model, samples, block):
    """Block influence per layer (summed over tokens) and the angular distance of every block of `block` layers."""
    L = len(model.model.layers)
    bi = [0.0] * L
    ang_sum = [0.0] * (L - block + 1)
    tokens = 0
    for ids in samples:
        states = []
        hooks = [layer.register_forward_hook(lambda m, a, o, i=i: states.append((i, a[0][0].clone(), (o[0] if isinstance(o, tuple) else o)[0].clone())))
                 for i, layer in enumerate(model.model.layers)]
        with torch.no_grad():
            model(torch.tensor([ids]))
        for h in hooks:
            h.remove()
        states.sort(key=lambda t: t[0])
        hs = [states[0][1]] + [s[2] for s in states]   # h_0 .. h_L (residual stream, pre final norm)
        for i in range(L):
            cos = torch.nn.functional.cosine_similarity(hs[i], hs[i + 1], dim=-1)
            bi[i] += (1 - cos).sum().item()
        for i in range(L - block + 1):
            cos = torch.nn.functional.cosine_similarity(hs[i], hs[i + block], dim=-1).clamp(-1, 1)
            ang_sum[i] += (torch.arccos(cos) / math.pi).sum().item()
        tokens += len(ids)
    return bi, [a / tokens for a in ang_sum]


def main():
    base = make_model()
    base.eval()
    g = torch.Generator().manual_seed(11)
    lengths = [24, 17, 40, 31, 12, 28]
    samples = [torch.randint(0, 300, (n,), generator=g).tolist() for n in lengths]
    bi, ang = layer_scores(base, samples, block=2)
    calib = {"samples": samples, "loss_before": mean_loss(base, samples), "block_influence": bi,
             "angular_distance_block2": ang,
             "note": "scripts/make_prune_fixtures.py; float64 transformers Qwen2 on models/tiny-qwen2-prune"}
    # The models with layers removed: the lowest block influence, and the block of 2 at the smallest distance.
    for key, removed in [("remove_layers1", [min(range(len(bi)), key=lambda i: bi[i])]),
                         ("remove_block2", [min(range(len(ang)), key=lambda i: ang[i]) + j for j in range(2)])]:
        smaller = copy.deepcopy(base)
        smaller.model.layers = torch.nn.ModuleList([m for i, m in enumerate(smaller.model.layers) if i not in removed])
        smaller.config.num_hidden_layers = len(smaller.model.layers)
        smaller.config.layer_types = ["full_attention"] * len(smaller.model.layers)
        for i, m in enumerate(smaller.model.layers):
            m.self_attn.layer_idx = i
        with torch.no_grad():
            logits = smaller(torch.tensor([samples[0]]), use_cache=False).logits[0, -3:]
        calib[key] = {"removed": removed, "logits_sample0_last3": logits.flatten().tolist(),
                      "loss_after": mean_loss(smaller, samples)}
    with open(os.path.join(GOLD, "prune-calibration.json"), "w") as f:
        json.dump(calib, f, indent=1)
    runs = [("magnitude", 0.5, None), ("magnitude", 0.5, (2, 4)), ("wanda", 0.5, None), ("wanda", 0.5, (2, 4)),
            ("sparsegpt", 0.5, None), ("sparsegpt", 0.3, None), ("sparsegpt", 0.5, (2, 4))]
    for method, sparsity, nm in runs:
        tag = f"{method}-{'%d-%d' % nm if nm else 'u%02d' % int(sparsity * 100)}"
        pruned = prune(base, samples, method, sparsity, nm)
        # Every run keeps its masks (1 = pruned); SparseGPT's runs that update weights also keep the weights.
        tensors = {}
        for l, layer in enumerate(pruned.model.layers):
            for name, lin in linears(layer).items():
                key = f"model.layers.{l}.{name}.weight"
                tensors[key + ".mask"] = (lin.weight.data == 0).to(torch.uint8).contiguous()
                if method == "sparsegpt" and sparsity == 0.5:
                    tensors[key] = lin.weight.data.float().contiguous()
        save_file(tensors, os.path.join(GOLD, f"prune-{tag}.safetensors"))
        with torch.no_grad():
            logits = pruned(torch.tensor([samples[0]])).logits[0, -3:]
        with open(os.path.join(GOLD, f"prune-{tag}.json"), "w") as f:
            json.dump({"method": method, "sparsity": sparsity, "pattern": "%d:%d" % nm if nm else "unstructured",
                       "loss_after": mean_loss(pruned, samples), "logits_sample0_last3": logits.flatten().tolist()}, f)
        print(tag, "loss", calib["loss_before"], "->", mean_loss(pruned, samples))
    print("block influence", bi)
    print("angular", ang)
    moe_main(samples)


MOE = os.path.join(FIX, "models", "tiny-qwen2-moe")


def moe_linears(layer):
    """Checkpoint-named (weight getter, weight setter, statistic key) of every prunable matrix of a layer."""
    out = {}
    for name in PROJ[:4]:
        lin = layer.get_submodule(name)
        out[name] = (lambda lin=lin: lin.weight.data, lambda w, lin=lin: setattr(lin.weight, "data", w), name)
    mlp = layer.mlp
    if hasattr(mlp, "experts"):
        ex = mlp.experts
        inter = ex.intermediate_dim
        for e in range(ex.num_experts):
            def getter(e=e, part=0):
                return ex.gate_up_proj.data[e, part * inter:(part + 1) * inter].clone()

            def setter(w, e=e, part=0):
                ex.gate_up_proj.data[e, part * inter:(part + 1) * inter] = w
            out[f"mlp.experts.{e}.gate_proj"] = (getter, setter, f"expert{e}.in")
            out[f"mlp.experts.{e}.up_proj"] = (lambda e=e: getter(e, 1), lambda w, e=e: setter(w, e, 1), f"expert{e}.in")
            out[f"mlp.experts.{e}.down_proj"] = (lambda e=e: ex.down_proj.data[e].clone(),
                                                lambda w, e=e: ex.down_proj.data.__setitem__(e, w), f"expert{e}.down")
        for name in ["gate_proj", "up_proj", "down_proj"]:
            lin = mlp.shared_expert.get_submodule(name)
            out[f"mlp.shared_expert.{name}"] = (lambda lin=lin: lin.weight.data, lambda w, lin=lin: setattr(lin.weight, "data", w),
                                                f"mlp.shared_expert.{name}")
    else:
        for name in PROJ[4:]:
            lin = layer.get_submodule(name)
            out[name] = (lambda lin=lin: lin.weight.data, lambda w, lin=lin: setattr(lin.weight, "data", w), name)
    return out


def moe_collect(model, l, samples, kind):
    """Layer l's statistics: its linears' inputs by module hooks, each expert's from the routed rows."""
    stats = {}

    def add(key, x):
        accumulate(stats, key, x, kind)

    layer = model.model.layers[l]
    handles = []
    for key, (_, _, stat) in moe_linears(layer).items():
        if ".experts." in key:
            continue
        handles.append(layer.get_submodule(key).register_forward_hook(lambda m, a, o, stat=stat: add(stat, a[0])))
    if hasattr(layer.mlp, "experts"):
        ex = layer.mlp.experts

        def experts_hook(m, args, _out):
            hidden, index = args[0], args[1]
            for e in range(ex.num_experts):
                rows = (index == e).any(dim=-1).nonzero().flatten()
                if len(rows) == 0:
                    continue
                x = hidden[rows]
                gate, up = torch.nn.functional.linear(x, ex.gate_up_proj[e]).chunk(2, dim=-1)
                add(f"expert{e}.in", x)
                add(f"expert{e}.down", ex.act_fn(gate) * up)
        handles.append(ex.register_forward_hook(experts_hook))
    return hooked_statistics(model, samples, handles, stats)


def moe_prune(base, samples, method, sparsity, nm):
    model = copy.deepcopy(base)
    for l in range(len(model.model.layers)):
        stats = None if method == "magnitude" else moe_collect(model, l, samples, method)
        with torch.no_grad():
            for name, (get, put, stat) in moe_linears(model.model.layers[l]).items():
                w = get()
                if method == "magnitude":
                    put(magnitude(w, sparsity, nm))
                elif method == "wanda":
                    put(wanda(w, stats[stat], sparsity, nm))
                else:
                    put(sparsegpt(w, stats[stat], sparsity, nm).to(w.dtype))
    return model


def moe_main(samples):
    base = AutoModelForCausalLM.from_pretrained(MOE, attn_implementation="eager", experts_implementation="eager",
                                                dtype=torch.float64)
    base.eval()
    bi, _ = layer_scores(base, samples, block=1)
    removed = [min(range(len(bi)), key=lambda i: bi[i])]
    smaller = copy.deepcopy(base)
    smaller.model.layers = torch.nn.ModuleList([m for i, m in enumerate(smaller.model.layers) if i not in removed])
    for i, m in enumerate(smaller.model.layers):
        m.self_attn.layer_idx = i
    with torch.no_grad():
        logits = smaller(torch.tensor([samples[0]]), use_cache=False).logits[0, -3:]
    calib = {"samples": samples, "loss_before": mean_loss(base, samples), "block_influence": bi,
             "remove_layers1": {"removed": removed, "logits_sample0_last3": logits.flatten().tolist(),
                                "loss_after": mean_loss(smaller, samples)},
             "note": "scripts/make_prune_fixtures.py; float64 transformers Qwen2-MoE on models/tiny-qwen2-moe"}
    with open(os.path.join(GOLD, "prune-moe-calibration.json"), "w") as f:
        json.dump(calib, f, indent=1)
    for method, sparsity, nm in [("magnitude", 0.5, None), ("wanda", 0.5, None), ("wanda", 0.5, (2, 4)), ("sparsegpt", 0.5, None)]:
        tag = f"{method}-{'%d-%d' % nm if nm else 'u%02d' % int(sparsity * 100)}"
        pruned = moe_prune(base, samples, method, sparsity, nm)
        tensors = {}
        for l, layer in enumerate(pruned.model.layers):
            for name, (get, _, _) in moe_linears(layer).items():
                key = f"model.layers.{l}.{name}.weight"
                w = get()
                tensors[key + ".mask"] = (w == 0).to(torch.uint8).contiguous()
                if method == "sparsegpt":
                    tensors[key] = w.float().contiguous()
        save_file(tensors, os.path.join(GOLD, f"prune-moe-{tag}.safetensors"))
        with torch.no_grad():
            logits = pruned(torch.tensor([samples[0]])).logits[0, -3:]
        with open(os.path.join(GOLD, f"prune-moe-{tag}.json"), "w") as f:
            json.dump({"method": method, "sparsity": sparsity, "pattern": "%d:%d" % nm if nm else "unstructured",
                       "loss_after": mean_loss(pruned, samples), "logits_sample0_last3": logits.flatten().tolist()}, f)
        print("moe", tag, "loss", calib["loss_before"], "->", mean_loss(pruned, samples))


if __name__ == "__main__":
    import sys
    if sys.argv[1:] == ["--moe"]:
        g = torch.Generator().manual_seed(11)
        moe_main([torch.randint(0, 300, (n,), generator=g).tolist() for n in [24, 17, 40, 31, 12, 28]])
    else:
        main()
