#!/usr/bin/env python3
"""Tiny random checkpoints of the model families beyond Qwen2/Llama, with golden numbers and PEFT LoRA adapters.

Run from the repository root:  python3 scripts/make_family_fixtures.py
Needs: torch, transformers (5.x), peft, safetensors. Writes Tests/Fixtures/models/tiny-<family> and
Tests/Fixtures/golden/family-<family>.json. Deterministic (fixed seeds).

Families that transformers ships (Phi-3, InternLM3 as Llama) run through transformers itself. Families whose
checkpoints need `trust_remote_code` (Qwen v1 `QWenLMHeadModel`, InternLM2, Baichuan2) are re-stated below in plain
torch, module for module under their checkpoint names, following the published remote modeling code: the fused
projections and their split (c_attn = [q|k|v]; wqkv interleaves each key/value head's query heads with its key and
value; W_pack = [q|k|v]), Qwen v1's MLP c_proj(w1(x) * silu(w2(x))) at intermediate_size / 2 and its log-n query
scaling at inference, Baichuan2's NormHead. Each config.json uses the keys the real checkpoints use.

For every family the golden file holds: logits of two packed sequences (and a third, longer one for windows and
LongRoPE), 16 greedy tokens, the mean next-token loss of a labelled sequence, and a LoRA adapter on the family's
fused q/k/v module (PEFT's layout, random non-zero B) with its logits, loss and every A/B gradient from autograd.
"""
import argparse
import json
import math
import os
import shutil
import subprocess
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_model_fixtures import make_tokenizer, randomise  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
MODELS = os.path.join(ROOT, "Tests", "Fixtures", "models")
GOLDEN = os.path.join(ROOT, "Tests", "Fixtures", "golden")
ADAPTERS = os.path.join(ROOT, "Tests", "Fixtures", "adapters")

SEQS = [[5, 17, 42, 99, 3, 250, 7, 1, 64, 128, 77], [300, 12, 8, 190, 33],
        [9, 31, 200, 4, 77, 150, 2, 61, 18, 240, 11, 95, 301, 6, 44, 120, 83, 27, 210, 13]]
LABELLED = {"ids": [301, 17, 42, 99, 3, 250, 7, 1, 64, 128, 77, 5], "labels": [-100] * 5 + [250, 7, 1, 64, 128, 77, 5]}


# ---- plain-torch restatements of the remote-code families ------------------------------------------------------

class RMSNorm(nn.Module):
    def __init__(self, n, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x):
        v = x.float().pow(2).mean(-1, keepdim=True)
        return self.weight * (x * torch.rsqrt(v + self.eps))


def rotate_half(x):
    a, b = x.chunk(2, dim=-1)
    return torch.cat((-b, a), dim=-1)


def rope(x, positions, theta, rot):
    """x [T, H, D]: the first `rot` dims rotated (rotate-half), the rest passed through."""
    inv = 1.0 / (theta ** (torch.arange(0, rot, 2, dtype=torch.int64).float() / rot))
    freqs = positions.float()[:, None] * inv[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos()[:, None, :], emb.sin()[:, None, :]
    xr, xp = x[..., :rot], x[..., rot:]
    return torch.cat((xr * cos + rotate_half(xr) * sin, xp), dim=-1)


def rope_pairs(x, positions, theta, rot):
    """x [T, H, D]: the first `rot` dims rotated as adjacent pairs (x[2i], x[2i+1]) (ChatGLM's remote code)."""
    inv = 1.0 / (theta ** (torch.arange(0, rot, 2, dtype=torch.int64).float() / rot))
    freqs = positions.float()[:, None] * inv[None, :]
    cos, sin = freqs.cos()[:, None, :], freqs.sin()[:, None, :]
    xr, xp = x[..., :rot].reshape(*x.shape[:-1], rot // 2, 2), x[..., rot:]
    a, b = xr[..., 0], xr[..., 1]
    out = torch.stack((a * cos - b * sin, b * cos + a * sin), dim=-1).flatten(-2)
    return torch.cat((out, xp), dim=-1)


def alibi_slopes(n):
    """Baichuan 13B's ALiBi slopes (its remote code's interleaving): for a power of two n the geometric series from
    2^(-8/n); otherwise the largest power of two p below n, then every other slope of 2p."""
    def geometric(p):
        start = 2 ** (-(2 ** -(math.log2(p) - 3)))
        return [start * start ** i for i in range(p)]
    if math.log2(n).is_integer():
        return geometric(n)
    p = 2 ** math.floor(math.log2(n))
    return geometric(p) + alibi_slopes(2 * p)[0::2][:n - p]


def attend(q, k, v, heads, kv_heads, alibi=None):
    """q [T, H, D], k/v [T, Hkv, D]: causal softmax attention in f32, GQA by repetition. With `alibi` (per-head
    slopes), head h's scores get slope_h * key position added (Baichuan 13B's mask: the same softmax as
    slope_h * (j - i))."""
    t, d = q.shape[0], q.shape[2]
    k = k.repeat_interleave(heads // kv_heads, dim=1)
    v = v.repeat_interleave(heads // kv_heads, dim=1)
    s = torch.einsum("thd,shd->hts", q, k) / math.sqrt(d)
    if alibi is not None:
        s = s + torch.tensor(alibi)[:, None, None] * torch.arange(t).float()[None, None, :]
    s = s.masked_fill(torch.triu(torch.ones(t, t, dtype=torch.bool), 1)[None], float("-inf"))
    return torch.einsum("hts,shd->thd", s.softmax(-1), v).reshape(t, heads * d)


class Container(nn.Module):
    """An empty module to hang named children on (`transformer.h.0.attn`, ...)."""


class RemoteCodeModel(nn.Module):
    """One decoder-only model whose tensor names, fused projections and quirks follow a remote-code family."""

    def __init__(self, family, cfg):
        super().__init__()
        self.family, self.cfg = family, cfg
        if family == "chatglm":  # ChatGLM's own field names
            cfg = dict(cfg, num_hidden_layers=cfg["num_layers"], vocab_size=cfg["padded_vocab_size"],
                       num_key_value_heads=cfg["multi_query_group_num"], rms_norm_eps=cfg["layernorm_epsilon"])
        c, h, d = cfg["hidden_size"], cfg["num_attention_heads"], cfg.get("kv_channels", cfg["hidden_size"] // cfg["num_attention_heads"])
        hkv = cfg.get("num_key_value_heads", h)
        self.h, self.hkv, self.d = h, hkv, d
        eps = cfg.get("rms_norm_eps", cfg.get("layer_norm_epsilon"))
        qkv_out = (h + 2 * hkv) * d
        if family == "qwen":
            i = cfg["intermediate_size"] // 2
            root = Container()
            root.wte = nn.Embedding(cfg["vocab_size"], c)
            root.h = nn.ModuleList()
            for _ in range(cfg["num_hidden_layers"]):
                blk = Container()
                blk.ln_1, blk.ln_2 = RMSNorm(c, eps), RMSNorm(c, eps)
                blk.attn = Container()
                blk.attn.c_attn = nn.Linear(c, qkv_out, bias=True)
                blk.attn.c_proj = nn.Linear(h * d, c, bias=False)
                blk.mlp = Container()
                blk.mlp.w1, blk.mlp.w2 = nn.Linear(c, i, bias=False), nn.Linear(c, i, bias=False)
                blk.mlp.c_proj = nn.Linear(i, c, bias=False)
                root.h.append(blk)
            root.ln_f = RMSNorm(c, eps)
            self.transformer = root
            self.lm_head = nn.Linear(c, cfg["vocab_size"], bias=False)
        elif family == "internlm2":
            i = cfg["intermediate_size"]
            root = Container()
            root.tok_embeddings = nn.Embedding(cfg["vocab_size"], c)
            root.layers = nn.ModuleList()
            for _ in range(cfg["num_hidden_layers"]):
                blk = Container()
                blk.attention_norm, blk.ffn_norm = RMSNorm(c, eps), RMSNorm(c, eps)
                blk.attention = Container()
                blk.attention.wqkv = nn.Linear(c, qkv_out, bias=cfg["bias"])
                blk.attention.wo = nn.Linear(h * d, c, bias=cfg["bias"])
                blk.feed_forward = Container()
                blk.feed_forward.w1 = nn.Linear(c, i, bias=False)
                blk.feed_forward.w3 = nn.Linear(c, i, bias=False)
                blk.feed_forward.w2 = nn.Linear(i, c, bias=False)
                root.layers.append(blk)
            root.norm = RMSNorm(c, eps)
            self.model = root
            self.output = nn.Linear(c, cfg["vocab_size"], bias=False)
        elif family == "baichuan":
            i = cfg["intermediate_size"]
            root = Container()
            root.embed_tokens = nn.Embedding(cfg["vocab_size"], c)
            root.layers = nn.ModuleList()
            for _ in range(cfg["num_hidden_layers"]):
                blk = Container()
                blk.input_layernorm, blk.post_attention_layernorm = RMSNorm(c, eps), RMSNorm(c, eps)
                blk.self_attn = Container()
                blk.self_attn.W_pack = nn.Linear(c, qkv_out, bias=False)
                blk.self_attn.o_proj = nn.Linear(h * d, c, bias=False)
                blk.mlp = Container()
                blk.mlp.gate_proj = nn.Linear(c, i, bias=False)
                blk.mlp.up_proj = nn.Linear(c, i, bias=False)
                blk.mlp.down_proj = nn.Linear(i, c, bias=False)
                root.layers.append(blk)
            root.norm = RMSNorm(c, eps)
            self.model = root
            self.lm_head = nn.Linear(c, cfg["vocab_size"], bias=False)
        elif family == "chatglm":
            i = cfg["ffn_hidden_size"]
            root = Container()
            root.embedding = Container()
            root.embedding.word_embeddings = nn.Embedding(cfg["vocab_size"], c)
            root.encoder = Container()
            root.encoder.layers = nn.ModuleList()
            for _ in range(cfg["num_hidden_layers"]):
                blk = Container()
                blk.input_layernorm, blk.post_attention_layernorm = RMSNorm(c, eps), RMSNorm(c, eps)
                blk.self_attention = Container()
                blk.self_attention.query_key_value = nn.Linear(c, qkv_out, bias=cfg["add_qkv_bias"])
                blk.self_attention.dense = nn.Linear(h * d, c, bias=False)
                blk.mlp = Container()
                blk.mlp.dense_h_to_4h = nn.Linear(c, 2 * i, bias=False)
                blk.mlp.dense_4h_to_h = nn.Linear(i, c, bias=False)
                root.encoder.layers.append(blk)
            root.encoder.final_layernorm = RMSNorm(c, eps)
            root.output_layer = nn.Linear(c, cfg["vocab_size"], bias=False)
            self.transformer = root
        else:
            raise ValueError(family)

    def parts(self):
        if self.family == "chatglm":
            t = self.transformer

            def swiglu(x, b):
                a, g = b.mlp.dense_h_to_4h(x).chunk(2, dim=-1)
                return b.mlp.dense_4h_to_h(F.silu(a) * g)
            return t.embedding.word_embeddings, [(b.input_layernorm, b.self_attention.query_key_value, b.self_attention.dense,
                                                  b.post_attention_layernorm, lambda x, b=b: swiglu(x, b))
                                                 for b in t.encoder.layers], t.encoder.final_layernorm, t.output_layer
        if self.family == "qwen":
            t = self.transformer
            return t.wte, [(b.ln_1, b.attn.c_attn, b.attn.c_proj, b.ln_2,
                            lambda x, b=b: b.mlp.c_proj(b.mlp.w1(x) * F.silu(b.mlp.w2(x)))) for b in t.h], t.ln_f, self.lm_head
        if self.family == "internlm2":
            m = self.model
            return m.tok_embeddings, [(b.attention_norm, b.attention.wqkv, b.attention.wo, b.ffn_norm,
                                       lambda x, b=b: b.feed_forward.w2(F.silu(b.feed_forward.w1(x)) * b.feed_forward.w3(x)))
                                      for b in m.layers], m.norm, self.output
        m = self.model
        return m.embed_tokens, [(b.input_layernorm, b.self_attn.W_pack, b.self_attn.o_proj, b.post_attention_layernorm,
                                 lambda x, b=b: b.mlp.down_proj(F.silu(b.mlp.gate_proj(x)) * b.mlp.up_proj(x)))
                                for b in m.layers], m.norm, self.lm_head

    def split_qkv(self, fused):
        t, h, hkv, d = fused.shape[0], self.h, self.hkv, self.d
        if self.family == "internlm2":
            g = h // hkv
            x = fused.view(t, hkv, g + 2, d)
            return x[:, :, :g, :].reshape(t, h, d), x[:, :, -2, :], x[:, :, -1, :]
        q, k, v = fused.split([h * d, hkv * d, hkv * d], dim=-1)
        return q.view(t, h, d), k.view(t, hkv, d), v.view(t, hkv, d)

    def forward(self, ids, ntk_length=None):
        """Logits [T, V] of one sequence. Qwen v1 with use_dynamic_ntk, at inference: past seq_length, the rotary base
        rises by alpha^(rot / (rot - 2)), alpha from the context length of the pass (`ntk_length`, default the
        sequence's; its cached generation keeps the prefill's)."""
        cfg = self.cfg
        theta = cfg.get("rope_theta", cfg.get("rotary_emb_base", 10000.0))
        rot = int(self.d * cfg.get("rotary_pct", 1.0))
        if self.family == "qwen" and cfg.get("use_dynamic_ntk") and not self.training:
            length, trained = ntk_length or ids.shape[0], cfg["seq_length"]
            alpha = max(2 ** math.ceil(math.log(length / trained, 2) + 1) - 1, 1)
            theta = theta * alpha ** (rot / (rot - 2))
        rotate = rope
        if self.family == "chatglm":  # half of each head, in pairs, base 10000 * rope_ratio
            theta, rot, rotate = 10000.0 * cfg.get("rope_ratio", 1), self.d // 2, rope_pairs
        emb, blocks, final, head = self.parts()
        x = emb(ids)
        pos = torch.arange(ids.shape[0])
        # Baichuan's 13B models (40 layers): ALiBi instead of rotary positions.
        alibi = alibi_slopes(self.h) if self.family == "baichuan" and cfg["num_hidden_layers"] == 40 else None
        for ln1, qkv, o, ln2, mlp in blocks:
            q, k, v = self.split_qkv(qkv(ln1(x)))
            if alibi is None:
                q, k = rotate(q, pos, theta, rot), rotate(k, pos, theta, rot)
            if self.family == "qwen" and cfg.get("use_logn_attn") and not self.training:
                n = cfg["seq_length"]
                scale = torch.tensor([math.log(p + 1, n) if p + 1 > n else 1.0 for p in range(ids.shape[0])])
                q = q * scale[:, None, None]
            x = x + o(attend(q, k, v, self.h, self.hkv, alibi))
            x = x + mlp(ln2(x))
        x = final(x)
        if self.family == "baichuan":
            return F.linear(x, F.normalize(head.weight))  # NormHead
        return head(x)


# ---- golden numbers ----------------------------------------------------------------------------------------

def logits_of(model, ids, native):
    t = torch.tensor([ids]) if native else torch.tensor(ids)
    out = model(t)
    return (out.logits[0] if native else out).float()


def mean_loss(model, native):
    lg = logits_of(model, LABELLED["ids"], native)
    labels = torch.tensor(LABELLED["labels"][1:] + [-100])
    return F.cross_entropy(lg, labels, ignore_index=-100, reduction="mean")


def forward_numbers(model, native, seqs):
    model.eval()
    with torch.no_grad():
        logits = [logits_of(model, s, native).flatten().tolist() for s in seqs]
        if native:
            # transformers' own cached generation (LongRoPE switches frequencies for new tokens only).
            out = model.generate(torch.tensor([seqs[0]]), max_new_tokens=16, do_sample=False, min_new_tokens=16,
                                 eos_token_id=None, pad_token_id=0)
            ids = out[0].tolist()
        else:
            # The remote code's cached generation: every step rotates with the prefill's NTK alpha.
            ids = list(seqs[0])
            for _ in range(16):
                ids.append(int(model(torch.tensor(ids), ntk_length=len(seqs[0]))[-1].float().argmax()))
        loss = float(mean_loss(model, native))
    return {"sequences": seqs, "logits": logits, "greedy_prompt": seqs[0], "greedy_continuation": ids[len(seqs[0]):],
            "loss": loss}


def add_lora(model, targets, r=4, alpha=8, seed=11):
    from peft import LoraConfig, inject_adapter_in_model
    cfg = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=0.0, target_modules=targets, bias="none")
    model = inject_adapter_in_model(cfg, model)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(0.2 * torch.randn(p.shape, generator=g))
    return model, cfg


def lora_numbers(model, native, targets, out_dir):
    model, cfg = add_lora(model, targets)
    def key(n):  # PEFT's file keys: no adapter name
        return "base_model.model." + n.replace(".default", "")

    tensors = {key(n): p.detach().clone().contiguous() for n, p in model.named_parameters() if "lora_" in n}
    os.makedirs(out_dir, exist_ok=True)
    save_file(tensors, os.path.join(out_dir, "adapter_model.safetensors"))
    with open(os.path.join(out_dir, "adapter_config.json"), "w") as f:
        json.dump({"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": cfg.r, "lora_alpha": cfg.lora_alpha,
                   "lora_dropout": 0.0, "target_modules": targets, "bias": "none", "fan_in_fan_out": False,
                   "base_model_name_or_path": None, "use_rslora": False, "use_dora": False}, f, indent=2)
    logits, loss, grads = lora_logits_loss_grads(model, native, key)
    return {"lora_logits": logits, "lora_loss": loss, "lora_grads": grads}


def lora_logits_loss_grads(model, native, key):
    """Logits of SEQS[:2] in eval mode, then the loss on LABELLED and every LoRA gradient (by `key` of the parameter
    name) in training mode (no dropout; Qwen v1's log-n scaling is an inference-only step)."""
    model.eval()
    with torch.no_grad():
        logits = [logits_of(model, s, native).flatten().tolist() for s in SEQS[:2]]
    model.train()
    for p in model.parameters():
        p.grad = None
    loss = mean_loss(model, native)
    loss.backward()
    grads = {key(n): p.grad.flatten().tolist() for n, p in model.named_parameters() if "lora_" in n}
    return logits, float(loss.detach()), grads


def write_model_dir(name, state, config, generation=None):
    d = os.path.join(MODELS, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    save_file({k: v.detach().contiguous() for k, v in state.items()}, os.path.join(d, "model.safetensors"),
              metadata={"format": "pt"})
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    make_tokenizer(d)
    with open(os.path.join(d, "generation_config.json"), "w") as f:
        json.dump(generation or {"eos_token_id": [302, 300], "do_sample": False}, f, indent=2)
    return d


ONLY = None   # --only NAME: write this family alone


def family(name, model, config, target, native, seqs=SEQS[:2]):
    if ONLY and name != ONLY:
        return
    targets = target if isinstance(target, list) else [target]
    numbers = forward_numbers(model, native, seqs)
    if native:
        d = os.path.join(MODELS, name)
        shutil.rmtree(d, ignore_errors=True)
        model.save_pretrained(d)
        make_tokenizer(d)
        with open(os.path.join(d, "config.json")) as f:
            saved = json.load(f)
        saved.update(config)
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(saved, f, indent=2)
    else:
        write_model_dir(name, model.state_dict(), config)
    numbers.update(lora_numbers(model, native, targets, os.path.join(ADAPTERS, name + "-lora")))
    numbers["targets"] = targets
    with open(os.path.join(GOLDEN, "family-" + name.removeprefix("tiny-") + ".json"), "w") as f:
        json.dump(numbers, f)
    print("wrote", name)


def main():
    torch.set_num_threads(2)
    base = dict(vocab_size=384, hidden_size=64, num_hidden_layers=2, num_attention_heads=4)

    # Qwen v1: MHA, c_attn with bias, untied head, log-n scaling past seq_length 8 (dynamic NTK off so the
    # sequence may run past it).
    qwen = {"architectures": ["QWenLMHeadModel"], "model_type": "qwen", **base, "intermediate_size": 256,
            "kv_channels": 16, "layer_norm_epsilon": 1e-6, "rotary_emb_base": 10000, "rotary_pct": 1.0,
            "seq_length": 8, "max_position_embeddings": 64, "use_dynamic_ntk": False, "use_logn_attn": True,
            "no_bias": True, "tie_word_embeddings": False, "torch_dtype": "float32",
            "auto_map": {"AutoConfig": "configuration_qwen.QWenConfig", "AutoModelForCausalLM": "modeling_qwen.QWenLMHeadModel"}}
    torch.manual_seed(21)
    m = RemoteCodeModel("qwen", qwen)
    randomise(m, 21)
    family("tiny-qwen1", m, qwen, "c_attn", native=False, seqs=SEQS)

    # Qwen v1 with dynamic NTK (and log-n) past seq_length 2: the 5-, 11- and 20-token sequences rotate with alpha 7,
    # 15 and 31 at inference, the greedy continuation keeps its 11-token prefill's alpha.
    qwen_ntk = dict(qwen, use_dynamic_ntk=True, seq_length=2)
    torch.manual_seed(25)
    m = RemoteCodeModel("qwen", qwen_ntk)
    randomise(m, 25)
    family("tiny-qwen1-ntk", m, qwen_ntk, "c_attn", native=False, seqs=SEQS)

    # InternLM2: GQA 4:2 through the interleaved wqkv.
    internlm2 = {"architectures": ["InternLM2ForCausalLM"], "model_type": "internlm2", **base, "num_key_value_heads": 2,
                 "intermediate_size": 128, "rms_norm_eps": 1e-5, "rope_theta": 1000000, "rope_scaling": None,
                 "bias": False, "max_position_embeddings": 64, "tie_word_embeddings": False, "hidden_act": "silu",
                 "torch_dtype": "float32", "bos_token_id": 1, "eos_token_id": 2}
    torch.manual_seed(22)
    m = RemoteCodeModel("internlm2", internlm2)
    randomise(m, 22)
    family("tiny-internlm2", m, internlm2, "wqkv", native=False)

    # Baichuan2-7B: W_pack, NormHead, rotary.
    baichuan = {"architectures": ["BaichuanForCausalLM"], "model_type": "baichuan", **base, "intermediate_size": 128,
                "rms_norm_eps": 1e-6, "max_position_embeddings": 64, "model_max_length": 64, "hidden_act": "silu",
                "tie_word_embeddings": False, "torch_dtype": "float32", "bos_token_id": 1, "eos_token_id": 2}
    torch.manual_seed(23)
    m = RemoteCodeModel("baichuan", baichuan)
    randomise(m, 23)
    family("tiny-baichuan2", m, baichuan, "W_pack", native=False)

    # Baichuan2-13B: 40 layers, ALiBi positions (6 heads: slopes of 4 and every other of 8), W_pack, NormHead.
    baichuan13 = dict(baichuan, hidden_size=48, num_attention_heads=6, num_hidden_layers=40, intermediate_size=32)
    torch.manual_seed(24)
    m = RemoteCodeModel("baichuan", baichuan13)
    randomise(m, 24)
    family("tiny-baichuan2-13b", m, baichuan13, "W_pack", native=False, seqs=SEQS)

    # Phi-3 through transformers: fused qkv_proj and gate_up_proj, GQA 4:2, tied head (as Phi-4-mini), partial
    # rotary 0.75 (12 of 16 dims), LongRoPE with original length 16 (the 20-token sequence takes the long
    # factors), sliding window 8 on every layer.
    from transformers import AutoModelForCausalLM, Phi3Config
    half = 6
    rope_params = {"rope_type": "longrope", "rope_theta": 10000.0,
                   "short_factor": [1.0 + 0.1 * i for i in range(half)], "long_factor": [1.5 + 0.4 * i for i in range(half)],
                   "original_max_position_embeddings": 16, "partial_rotary_factor": 0.75}
    cfg = Phi3Config(**base, num_key_value_heads=2, intermediate_size=128, max_position_embeddings=64,
                     original_max_position_embeddings=16, rms_norm_eps=1e-5, tie_word_embeddings=True,
                     rope_parameters=rope_params, partial_rotary_factor=0.75, sliding_window=8, pad_token_id=300,
                     bos_token_id=300, eos_token_id=302)
    cfg._attn_implementation = "eager"
    torch.manual_seed(24)
    m = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    randomise(m, 24)
    family("tiny-phi3", m, {}, "qkv_proj", native=True, seqs=SEQS)

    # InternLM3 is Llama's math under model_type internlm3 (its own config keys: bias, qkv_bias, head_dim).
    from transformers import LlamaConfig
    cfg = LlamaConfig(**base, num_key_value_heads=2, intermediate_size=128, head_dim=32, max_position_embeddings=64,
                      rms_norm_eps=1e-5, rope_theta=50000.0, tie_word_embeddings=False, bos_token_id=300, eos_token_id=302)
    torch.manual_seed(25)
    m = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    randomise(m, 25)
    family("tiny-internlm3", m, {"model_type": "internlm3", "architectures": ["InternLM3ForCausalLM"], "bias": False,
                                 "qkv_bias": False, "rope_scaling": {"rope_type": "dynamic", "factor": 6.0}},
           "q_proj", native=True)

    # Gemma 2: (1 + w) norms, sandwich norms, GELU-tanh, embeddings scaled by sqrt(64), query_pre_attn_scalar 24,
    # attention and final soft-capping tight enough to bite (2 and 3), layer 0 a window of 4, layer 1 global; tied.
    from transformers import Gemma2Config, Gemma3TextConfig, GlmConfig, Glm4Config
    gemma_common = dict(**base, num_key_value_heads=2, head_dim=16, intermediate_size=128, max_position_embeddings=64,
                        rms_norm_eps=1e-6, pad_token_id=0, bos_token_id=300, eos_token_id=302)
    cfg = Gemma2Config(**gemma_common, query_pre_attn_scalar=24, attn_logit_softcapping=2.0, final_logit_softcapping=3.0,
                       sliding_window=4, layer_types=["sliding_attention", "full_attention"])
    cfg._attn_implementation = "eager"
    torch.manual_seed(26)
    m = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    randomise(m, 26)
    family("tiny-gemma2", m, {}, ["q_proj", "v_proj", "down_proj"], native=True, seqs=SEQS)

    # Gemma 3 (text): q/k norms, local layers on base 10000, global ones on 1e6 with linear scaling 2, window 4.
    cfg = Gemma3TextConfig(**gemma_common, query_pre_attn_scalar=16, sliding_window=4,
                           layer_types=["sliding_attention", "full_attention"],
                           rope_parameters={"sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                                            "full_attention": {"rope_type": "linear", "factor": 2.0, "rope_theta": 1000000.0}})
    cfg._attn_implementation = "eager"
    torch.manual_seed(27)
    m = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    randomise(m, 27)
    family("tiny-gemma3", m, {}, ["q_proj", "v_proj", "down_proj"], native=True, seqs=SEQS)

    # GLM-4-9B-chat-hf (glm) and GLM-4-0414 (glm4): half the head rotated on adjacent pairs, q/k/v bias, fused
    # gate_up_proj; glm4 adds norms after attention and after the MLP.
    for name, C, seed in [("tiny-glm", GlmConfig, 28), ("tiny-glm4", Glm4Config, 29)]:
        cfg = C(**base, num_key_value_heads=2, head_dim=16, intermediate_size=128, max_position_embeddings=64,
                rms_norm_eps=1e-5, partial_rotary_factor=0.5, attention_bias=True, tie_word_embeddings=False,
                pad_token_id=300, bos_token_id=300, eos_token_id=302)
        torch.manual_seed(seed)
        m = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
        randomise(m, seed)
        family(name, m, {}, ["q_proj", "v_proj", "gate_up_proj"], native=True)

    # Qwen2-MoE: 4 experts, top 2 (probabilities not renormalised), a shared expert behind its sigmoid gate, layer 1
    # dense (mlp_only_layers). Qwen3-MoE: q/k norms, top 2 renormalised, no shared expert. LoRA on attention: its
    # gradients pass back through the experts and the router.
    from transformers import Qwen2MoeConfig, Qwen3MoeConfig
    moe_common = dict(**base, num_key_value_heads=2, intermediate_size=128, moe_intermediate_size=32, num_experts=4,
                      num_experts_per_tok=2, max_position_embeddings=64, rms_norm_eps=1e-6, bos_token_id=300,
                      eos_token_id=302, tie_word_embeddings=False)
    for name, cfg, seed in [
            ("tiny-qwen2-moe", Qwen2MoeConfig(**moe_common, shared_expert_intermediate_size=48, norm_topk_prob=False,
                                               mlp_only_layers=[1]), 30),
            ("tiny-qwen3-moe", Qwen3MoeConfig(**moe_common, head_dim=16, norm_topk_prob=True), 31)]:
        torch.manual_seed(seed)
        m = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
        randomise(m, seed)
        family(name, m, {}, ["q_proj", "v_proj", "o_proj"], native=True)

    # OLMoE: q/k norms across all heads (widths 64 and 32: GQA 4:2), 4 experts of intermediate_size, top 2 not
    # renormalised, every layer sparse, no shared expert.
    from transformers import OlmoeConfig
    cfg = OlmoeConfig(**base, num_key_value_heads=2, intermediate_size=32, num_experts=4, num_experts_per_tok=2,
                      norm_topk_prob=False, max_position_embeddings=64, rms_norm_eps=1e-5, bos_token_id=300,
                      eos_token_id=302, pad_token_id=301, tie_word_embeddings=False)
    torch.manual_seed(32)
    m = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    randomise(m, 32)
    family("tiny-olmoe", m, {}, ["q_proj", "v_proj", "o_proj"], native=True)


REMOTE = {"tiny-qwen1": "qwen", "tiny-qwen1-ntk": "qwen", "tiny-internlm2": "internlm2", "tiny-baichuan2": "baichuan",
          "tiny-baichuan2-13b": "baichuan", "tiny-chatglm": "chatglm"}


def make_chatglm():
    """GLM-4's remote-code layout (ChatGLMModel, model_type chatglm): GQA 4:2 through query_key_value with its bias,
    dense_h_to_4h = [gate | up], half of each 16-wide head rotated in pairs with base 10000 * rope_ratio (1.5), its
    own field names."""
    chatglm = {"architectures": ["ChatGLMModel"], "model_type": "chatglm", "num_layers": 2, "hidden_size": 64,
               "num_attention_heads": 4, "kv_channels": 16, "multi_query_attention": True, "multi_query_group_num": 2,
               "ffn_hidden_size": 128, "padded_vocab_size": 384, "seq_length": 64, "layernorm_epsilon": 1e-5,
               "rmsnorm": True, "add_bias_linear": False, "add_qkv_bias": True, "post_layer_norm": True,
               "apply_residual_connection_post_layernorm": False, "original_rope": True, "rope_ratio": 1.5,
               "tie_word_embeddings": False, "torch_dtype": "float32", "eos_token_id": [302, 300],
               "auto_map": {"AutoConfig": "configuration_chatglm.ChatGLMConfig", "AutoModel": "modeling_chatglm.ChatGLMForConditionalGeneration"}}
    torch.manual_seed(30)
    m = RemoteCodeModel("chatglm", chatglm)
    randomise(m, 30)
    family("tiny-chatglm", m, chatglm, "query_key_value", native=False)


def load_reference(directory, name):
    """The family's reference model on a checkpoint folder: transformers, or the restatement above (strict load)."""
    if name in REMOTE:
        from safetensors.torch import load_file
        with open(os.path.join(directory, "config.json")) as f:
            cfg = json.load(f)
        m = RemoteCodeModel(REMOTE[name], cfg)
        m.load_state_dict(load_file(os.path.join(directory, "model.safetensors")), strict=True)
        return m.eval(), False
    from transformers import AutoModelForCausalLM
    return AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32).eval(), True


ROUNDTRIP = ["tiny-qwen1", "tiny-qwen1-ntk", "tiny-olmoe", "tiny-internlm2", "tiny-baichuan2", "tiny-baichuan2-13b", "tiny-phi3", "tiny-gemma2", "tiny-gemma3", "tiny-glm",
             "tiny-glm4", "tiny-qwen2-moe", "tiny-qwen3-moe", "tiny-chatglm"]


def roundtrip(binary, names=ROUNDTRIP):
    """Our tool trains a LoRA with each family's default targets and merges it; PEFT loads our adapter and
    transformers (or the restatement) loads our merged checkpoint; their logits go into the family's golden file."""
    from make_peft_fixtures import keep_adapter_only, write_train_data
    from peft import LoraConfig, PeftModel, inject_adapter_in_model
    from safetensors.torch import load_file
    work = os.path.join(ROOT, ".build", "family-roundtrip")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    data = write_train_data(work)
    for name in names:
        base = os.path.join(MODELS, name)
        out = os.path.join(ADAPTERS, name + "-ours")
        shutil.rmtree(out, ignore_errors=True)
        subprocess.run([binary, "train", "--model", base, "--data", data, "--output", out, "--lora-r", "4",
                        "--lora-alpha", "8", "--lora-dropout", "0", "--max-steps", "4", "--lr", "0.05",
                        "--batch-size", "2", "--seed", "3", "--dtype", "float32"], check=True, capture_output=True)
        keep_adapter_only(out)
        model, native = load_reference(base, name)
        if native:
            model = PeftModel.from_pretrained(model, out).eval()
        else:
            with open(os.path.join(out, "adapter_config.json")) as f:
                ac = json.load(f)
            model = inject_adapter_in_model(LoraConfig(r=ac["r"], lora_alpha=ac["lora_alpha"],
                                                       target_modules=ac["target_modules"]), model)
            saved = load_file(os.path.join(out, "adapter_model.safetensors"))
            used = set()
            with torch.no_grad():
                for n, p in model.named_parameters():
                    if "lora_" in n:
                        key = "base_model.model." + n.replace(".default", "")
                        p.copy_(saved[key])
                        used.add(key)
            assert used == set(saved), (name, set(saved) - used)
            model.eval()
        golden_path = os.path.join(GOLDEN, "family-" + name.removeprefix("tiny-") + ".json")
        with open(golden_path) as f:
            golden = json.load(f)
        with torch.no_grad():
            golden["ours_in_peft_logits"] = [logits_of(model, s, native).flatten().tolist() for s in SEQS[:2]]
        merged = os.path.join(work, name + "-merged")
        subprocess.run([binary, "merge", "--model", base, "--adapter", out, "--output", merged], check=True,
                       capture_output=True)
        m, native = load_reference(merged, name)
        with torch.no_grad():
            golden["ours_merged_logits"] = [logits_of(m, s, native).flatten().tolist() for s in SEQS[:2]]
        with open(golden_path, "w") as f:
            json.dump(golden, f)
        print("round trip", name)


def moe_aux_numbers():
    """The router's load-balancing loss in training (transformers with output_router_logits, router_aux_loss_coef
    0.05) for tiny-qwen2-moe and tiny-qwen3-moe with their PEFT LoRA on q/v/o: the total loss, aux_loss, the
    cross-entropy part and every LoRA gradient (the aux loss reaches the attention LoRA through the routers' inputs),
    in golden/moe-aux-<family>.json."""
    from peft import PeftModel
    from transformers import AutoConfig, AutoModelForCausalLM
    for name in [ONLY] if ONLY else ["tiny-qwen2-moe", "tiny-qwen3-moe", "tiny-olmoe"]:
        d = os.path.join(MODELS, name)
        cfg = AutoConfig.from_pretrained(d)
        cfg.output_router_logits, cfg.router_aux_loss_coef = True, 0.05
        base = AutoModelForCausalLM.from_pretrained(d, config=cfg, dtype=torch.float32)
        model = PeftModel.from_pretrained(base, os.path.join(ADAPTERS, name + "-lora"), is_trainable=True)
        model.train()
        out = model(input_ids=torch.tensor([LABELLED["ids"]]), labels=torch.tensor([LABELLED["labels"]]))
        out.loss.backward()
        grads = {"base_model.model." + n.removeprefix("base_model.model.").replace(".default", ""): p.grad.flatten().tolist()
                 for n, p in model.named_parameters() if "lora_" in n}
        numbers = {"coefficient": 0.05, "loss": float(out.loss), "aux_loss": float(out.aux_loss),
                   "ce_loss": float(out.loss - 0.05 * out.aux_loss), "lora_grads": grads}
        with open(os.path.join(GOLDEN, "moe-aux-" + name.removeprefix("tiny-") + ".json"), "w") as f:
            json.dump(numbers, f)
        print("wrote moe-aux", name)


EXPERT_PARAMETERS = ["mlp.experts.gate_up_proj", "mlp.experts.down_proj", "mlp.gate.weight"]


def expert_lora_numbers(binary=None):
    """PEFT's LoRA on the stacked experts and the router (target_parameters mlp.experts.gate_up_proj and
    mlp.experts.down_proj: per expert e, lora_A rows e*r..(e+1)*r and lora_B columns k*E+e, gate_up's wrapper nested
    inside as `experts.base_layer`; mlp.gate.weight: a plain LoRA on the router's [E, C] weight) beside q_proj/v_proj, r 4, alpha 8, no dropout (PEFT allows none on parameters), every B drawn
    at random so it counts. For tiny-qwen3-moe, tiny-qwen2-moe and tiny-olmoe: the adapter in
    adapters/<name>-expert-lora, and in golden/expert-lora-<family>.json the logits of SEQS[:2] with it, the loss on
    LABELLED and every LoRA gradient (no router loss), and the logits of transformers' merge_and_unload."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM
    for name in ["tiny-qwen3-moe", "tiny-qwen2-moe", "tiny-olmoe"]:
        if ONLY and ONLY != name:
            continue
        base = AutoModelForCausalLM.from_pretrained(os.path.join(MODELS, name), dtype=torch.float32)
        torch.manual_seed(17)   # PEFT draws lora_A from torch's global generator
        cfg = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "v_proj"],
                         target_parameters=EXPERT_PARAMETERS, bias="none")
        model = get_peft_model(base, cfg)
        g = torch.Generator().manual_seed(23)
        with torch.no_grad():
            for n, p in model.named_parameters():
                if "lora_B" in n:
                    p.copy_(0.2 * torch.randn(p.shape, generator=g))
        out_dir = os.path.join(ADAPTERS, name + "-expert-lora")
        model.save_pretrained(out_dir)
        # PEFT writes target_modules from a set (its order varies with string hashing): sorted, the file is the same
        # on every run.
        config_path = os.path.join(out_dir, "adapter_config.json")
        with open(config_path) as f:
            written = json.load(f)
        written["target_modules"] = sorted(written["target_modules"])
        with open(config_path, "w") as f:
            json.dump(written, f, indent=2, sort_keys=True)
        logits, loss, grads = lora_logits_loss_grads(
            model, True, lambda n: "base_model.model." + n.removeprefix("base_model.model.").replace(".default", ""))
        model.eval()
        merged = model.merge_and_unload()
        with torch.no_grad():
            merged_logits = [logits_of(merged, s, True).flatten().tolist() for s in SEQS[:2]]
        numbers = {"sequences": SEQS[:2], "logits": logits, "loss": loss, "lora_grads": grads,
                   "merged_logits": merged_logits}
        if binary:
            # Ours in PEFT: 4 steps of `peft train --target-parameters` on the fixture runs' records, loaded by PeftModel.
            from make_peft_fixtures import keep_adapter_only, write_train_data
            from peft import PeftModel
            ours = os.path.join(ADAPTERS, name + "-expert-ours")
            work = os.path.join(ROOT, ".build", "expert-lora-roundtrip")
            shutil.rmtree(work, ignore_errors=True)
            os.makedirs(work)
            shutil.rmtree(ours, ignore_errors=True)
            subprocess.run([binary, "train", "--model", os.path.join(MODELS, name), "--data", write_train_data(work),
                            "--dtype", "float32", "--max-steps", "4", "--lr", "1e-2", "--batch-size", "2",
                            "--target-parameters", ",".join(EXPERT_PARAMETERS), "--output", ours],
                           check=True, capture_output=True)
            keep_adapter_only(ours)
            fresh = AutoModelForCausalLM.from_pretrained(os.path.join(MODELS, name), dtype=torch.float32)
            loaded = PeftModel.from_pretrained(fresh, ours).eval()
            with torch.no_grad():
                numbers["ours_in_peft_logits"] = [logits_of(loaded, s, True).flatten().tolist() for s in SEQS[:2]]
        with open(os.path.join(GOLDEN, "expert-lora-" + name.removeprefix("tiny-") + ".json"), "w") as f:
            json.dump(numbers, f)
        print("wrote expert-lora", name, sorted(k for k in grads if "layers.0.mlp" in k))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--peft-binary", help="also train and merge with our tool and record what PEFT/transformers compute")
    ap.add_argument("--only-chatglm", action="store_true", help="only the ChatGLM remote-code fixture")
    ap.add_argument("--only", help="only this family of main() (e.g. tiny-baichuan2-13b), and its round trip")
    ap.add_argument("--only-moe-aux", action="store_true", help="only the load-balancing loss fixtures")
    ap.add_argument("--only-expert-lora", action="store_true", help="only the LoRA-on-experts fixtures (with --only: one family)")
    args = ap.parse_args()
    if args.only_expert_lora:
        ONLY = args.only
        expert_lora_numbers(os.path.abspath(args.peft_binary) if args.peft_binary else None)
        sys.exit(0)
    if args.only:
        ONLY = args.only
        main()
        if "moe" in ONLY:
            moe_aux_numbers()
        if args.peft_binary:
            roundtrip(os.path.abspath(args.peft_binary), [args.only])
        sys.exit(0)
    if args.only_moe_aux:
        moe_aux_numbers()
    elif args.only_chatglm:
        make_chatglm()
    else:
        main()
        make_chatglm()
        moe_aux_numbers()
    if args.peft_binary:
        roundtrip(os.path.abspath(args.peft_binary), ["tiny-chatglm"] if args.only_chatglm else ROUNDTRIP)
