#!/usr/bin/env python3
"""The Python peer for scripts/bench.py: transformers (+ PEFT) on the same checkpoint and data.

    peer.py generate MODEL PROMPT NEW_TOKENS DTYPE
    peer.py train MODEL DATA STEPS BATCH MAXLEN DTYPE CHECKPOINTING [METHOD]
METHOD: lora (default), dora, ia3, prompt, ptuning, prefix, with the settings bench.py gives ours.
Prints one JSON object on stdout.
"""
import json
import os
import sys
import time

import torch
import transformers
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

torch.set_num_threads(2)
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def load_model(model_dir, dtype):
    """transformers' model of the checkpoint in `dtype`; a remote-code family (config.json with an auto_map: Qwen v1,
    InternLM2, Baichuan2) by its own code, as its users run it."""
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    kw = {"trust_remote_code": True} if "auto_map" in cfg else {}
    # `dtype` since transformers 4.56; the older ones the remote-code families need call it torch_dtype.
    newer = tuple(int(x) for x in transformers.__version__.split(".")[:2]) >= (4, 56)
    kw["dtype" if newer else "torch_dtype"] = DTYPES[dtype]
    if "auto_map" in cfg and "fp32" in cfg:  # Qwen v1 casts itself by its config's bf16 / fp16 / fp32 flags
        config = AutoConfig.from_pretrained(model_dir, trust_remote_code=True)
        config.bf16, config.fp16, config.fp32 = dtype == "bfloat16", False, dtype == "float32"
        kw["config"] = config
    return AutoModelForCausalLM.from_pretrained(model_dir, **kw)


def generate(model_dir, prompt, new_tokens, dtype):
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = load_model(model_dir, dtype)
    model.eval()
    ids = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                  return_tensors="pt", return_dict=True)["input_ids"]
    with torch.no_grad():
        t0 = time.perf_counter()
        out = model(ids, use_cache=True)
        t1 = time.perf_counter()
        past, nxt = out.past_key_values, out.logits[:, -1].argmax(-1, keepdim=True)
        for _ in range(new_tokens - 1):
            out = model(nxt, past_key_values=past, use_cache=True)
            past, nxt = out.past_key_values, out.logits[:, -1].argmax(-1, keepdim=True)
        t2 = time.perf_counter()
    print(json.dumps({"prompt_tokens": ids.shape[1], "prefill_tokens_per_second": ids.shape[1] / (t1 - t0),
                      "decode_tokens_per_second": (new_tokens - 1) / (t2 - t1)}))


def examples(tok, path, maxlen):
    """prompt (chat template with generation prompt) + answer + <|im_end|>; labels on answer and end of turn."""
    end = tok.convert_tokens_to_ids("<|im_end|>")
    out = []
    for line in open(path, encoding="utf-8"):
        if not line.strip():
            continue
        r = json.loads(line)
        user = r["instruction"] + ("\n" + r["input"] if r.get("input") else "")
        prompt = tok.apply_chat_template([{"role": "user", "content": user}], add_generation_prompt=True,
                                         return_dict=True)["input_ids"]
        answer = tok(r["output"], add_special_tokens=False)["input_ids"] + [end]
        ids = (prompt + answer)[:maxlen]
        labels = ([-100] * len(prompt) + answer)[:maxlen]
        out.append((ids, labels))
    return out


def method_config(method):
    """The PEFT config of each benchmarked method (bench.py passes ours the same settings)."""
    from peft import IA3Config, LoraConfig, PrefixTuningConfig, PromptEncoderConfig, PromptTuningConfig
    if method in ("lora", "dora"):
        # bench.py --targets (Phi-3's fused qkv_proj, ...) reaches the peer through the environment.
        targets = os.environ.get("PEFT_BENCH_TARGETS", "q_proj,v_proj").split(",")
        # bench.py --target-parameters: LoRA on the stacked experts too (PEFT allows no dropout there).
        parameters = [p for p in os.environ.get("PEFT_BENCH_TARGET_PARAMETERS", "").split(",") if p]
        if parameters:
            return LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=targets, target_parameters=parameters,
                              task_type="CAUSAL_LM")
        return LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05, target_modules=targets,
                          use_dora=method == "dora", task_type="CAUSAL_LM")
    if method == "ia3":
        return IA3Config(target_modules=["k_proj", "v_proj", "down_proj"], feedforward_modules=["down_proj"],
                         task_type="CAUSAL_LM")
    if method == "prompt":
        return PromptTuningConfig(num_virtual_tokens=20, task_type="CAUSAL_LM")
    if method == "ptuning":
        return PromptEncoderConfig(num_virtual_tokens=20, task_type="CAUSAL_LM")
    return PrefixTuningConfig(num_virtual_tokens=20, task_type="CAUSAL_LM")


def padded(chunk, pad):
    """Right-padded input_ids, attention_mask and labels of (ids, labels) examples."""
    T = max(len(ids) for ids, _ in chunk)
    ids = torch.tensor([i + [pad] * (T - len(i)) for i, _ in chunk])
    mask = torch.tensor([[1] * len(i) + [0] * (T - len(i)) for i, _ in chunk])
    labels = torch.tensor([l + [-100] * (T - len(l)) for _, l in chunk])
    return ids, mask, labels


def timed_steps(steps, chunk_of, loss_of, params, opt):
    """steps + 1 optimiser steps (AdamW, clipping at 1.0) on chunk_of(step); step 0 warms up and is not timed.
    loss_of(chunk) returns the loss and the step's tokens. Prints the timed steps' tokens/s as JSON."""
    tokens, start = 0, None
    for step in range(steps + 1):
        chunk = chunk_of(step)
        if step == 1:
            start = time.perf_counter()
        loss, n = loss_of(chunk)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad()
        if step >= 1:
            tokens += n
    elapsed = time.perf_counter() - start
    print(json.dumps({"tokens": tokens, "seconds": elapsed, "tokens_per_second": tokens / elapsed}))


def train(model_dir, data, steps, batch, maxlen, dtype, checkpointing, method="lora"):
    from peft import get_peft_model
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = load_model(model_dir, dtype)
    if checkpointing:
        model.gradient_checkpointing_enable()
        if method != "full":
            model.enable_input_require_grads()
    if method != "full":   # full fine-tuning: every parameter of the model trains, as transformers' Trainer does
        model = get_peft_model(model, method_config(method))
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=2e-4)
    exs = examples(tok, data, maxlen)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0

    def loss_of(chunk):
        ids, mask, labels = padded(chunk, pad)
        return model(input_ids=ids, attention_mask=mask, labels=labels).loss, int(mask.sum())

    timed_steps(steps, lambda step: [exs[(step * batch + i) % len(exs)] for i in range(batch)], loss_of, params, opt)


def distill(student_dir, teacher_dir, data, steps, batch, maxlen, beta, temperature):
    """What TRL's GKDTrainer computes per off-policy step (lmbda 0): the LoRA student's forward and backward, the
    teacher's forward without gradients, TRL's own generalized_jsd_loss on the answer tokens; AdamW, clipping."""
    from peft import get_peft_model
    from trl.experimental.gkd import GKDTrainer
    tok = AutoTokenizer.from_pretrained(student_dir)
    model = get_peft_model(load_model(student_dir, "float32"), method_config("lora"))
    teacher = load_model(teacher_dir, "float32").eval()
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=2e-4)
    exs = examples(tok, data, maxlen)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0

    def loss_of(chunk):
        ids, mask, labels = padded(chunk, pad)
        logits = model(input_ids=ids, attention_mask=mask).logits
        with torch.no_grad():
            t_logits = teacher(input_ids=ids, attention_mask=mask).logits
        loss = GKDTrainer.generalized_jsd_loss(logits[:, :-1], t_logits[:, :-1], labels=labels[:, 1:], beta=beta,
                                               temperature=temperature)
        return loss, int(mask.sum())

    timed_steps(steps, lambda step: [exs[(step * batch + i) % len(exs)] for i in range(batch)], loss_of, params, opt)


def dpo(model_dir, data, steps, batch, maxlen, beta):
    """What TRL's DPOTrainer computes per step with PEFT: chosen and rejected in one batch through the LoRA
    policy (forward and backward), the same batch through the base with the adapter disabled (no gradients), the
    sigmoid loss on summed answer log-probabilities; AdamW, clipping. Pairs: each record's answer as chosen, the
    next record's answer as rejected."""
    import torch.nn.functional as F
    from peft import get_peft_model
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = get_peft_model(load_model(model_dir, "float32"), method_config("lora"))
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=2e-4)
    exs = examples(tok, data, maxlen)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0

    def logps(m, chunk):
        ids, mask, labels = padded(chunk, pad)
        labels = labels[:, 1:]
        lp = torch.log_softmax(m(input_ids=ids, attention_mask=mask).logits[:, :-1], -1)
        keep = labels != -100
        return (torch.gather(lp, 2, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1) * keep).sum(-1), int(mask.sum())

    def pairs(step):
        chunk = []
        for i in range(batch):
            a, b = exs[(step * batch + i) % len(exs)], exs[(step * batch + i + 1) % len(exs)]
            prompt = [t for t, l in zip(*a) if l == -100]
            chunk += [a, (prompt + [t for t, l in zip(*b) if l != -100], [-100] * len(prompt) + [l for l in b[1] if l != -100])]
        return chunk

    def loss_of(chunk):
        lp, n = logps(model, chunk)
        with torch.no_grad(), model.disable_adapter():
            ref, _ = logps(model, chunk)
        return -F.logsigmoid(beta * ((lp[0::2] - ref[0::2]) - (lp[1::2] - ref[1::2]))).mean(), n

    timed_steps(steps, pairs, loss_of, params, opt)


if __name__ == "__main__":
    kind = sys.argv[1]
    if kind == "dpo":
        dpo(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), float(sys.argv[7]))
        sys.exit(0)
    if kind == "distill":
        distill(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7]),
                float(sys.argv[8]), float(sys.argv[9]))
        sys.exit(0)
    if kind == "generate":
        generate(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
    else:
        train(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), sys.argv[7],
              sys.argv[8] == "1", sys.argv[9] if len(sys.argv) > 9 else "lora")
