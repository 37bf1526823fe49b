#!/usr/bin/env python3
"""Golden numbers for bottleneck adapters from the AdapterHub `adapters` library (1.3, which pins transformers 4.57:
use a separate environment, e.g. `python3 -m venv /opt/ah && /opt/ah/bin/pip install adapters==1.3.*`).

    /opt/ah/bin/python scripts/make_bottleneck_fixtures.py [--peft-binary .build/debug/peft]

`adapters` supports Llama and Mistral (not Qwen2), so the fixtures use tiny-llama and tiny-mistral. For each of
double_seq_bn (Houlsby), seq_bn (Pfeiffer) and par_bn (parallel) it writes Tests/Fixtures/bottleneck/<arch>-<config>/:
  - adapter/        what `save_adapter(..., use_safetensors=True)` writes, every parameter random and non-zero
  - golden.json     loss and every adapter parameter's gradient of a 2-example batch (answer-only labels) and
                    eval-mode logits of two sequences
  - init/ + trajectory.json  the library's own initialisation and 10 AdamW steps of torch from it
With --peft-binary it trains each config with *our* tool on tiny-llama and records the logits `adapters` computes
after `load_adapter` (Tests/Fixtures/bottleneck/ours-<config>.json and ours-<config>/).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys

import adapters
import torch
from transformers import AutoModelForCausalLM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_peft_fixtures import EXAMPLES, keep_adapter_only, padded_batch, run_trajectory, write_train_data  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FIX = os.path.join(ROOT, "Tests", "Fixtures")
OUT = os.path.join(FIX, "bottleneck")
CONFIGS = {"double_seq_bn": "houlsby", "seq_bn": "pfeiffer", "par_bn": "parallel"}


def model_dir(arch):
    """The fixture model, with its transformers-5 `rope_parameters` also spelled as transformers 4.x reads them
    (`rope_theta`, `rope_scaling`), so this environment's transformers computes the same model."""
    src = os.path.join(FIX, "models", arch)
    dst = os.path.join(ROOT, ".build", "fixture-bottleneck-models", arch)
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst)
    config = json.load(open(os.path.join(dst, "config.json")))
    rope = dict(config.get("rope_parameters") or {})
    if rope:
        config["rope_theta"] = rope.pop("rope_theta", 10000.0)
        if rope.get("rope_type", "default") != "default":
            config["rope_scaling"] = rope
    json.dump(config, open(os.path.join(dst, "config.json"), "w"), indent=2)
    return dst


def model_with(arch, config, name="bottleneck", seed=0):
    model = AutoModelForCausalLM.from_pretrained(model_dir(arch), torch_dtype=torch.float32)
    adapters.init(model)
    torch.manual_seed(seed)
    model.add_adapter(name, config=config)
    model.train_adapter(name)
    return model


def trainable(model):
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def flat(t):
    return t.detach().flatten().tolist()


def logits_of(model):
    model.eval()
    with torch.no_grad():
        out = [flat(model(torch.tensor([e["ids"]])).logits[0]) for e in EXAMPLES[:2]]
    model.train()
    return out


def save(model, directory, name="bottleneck"):
    shutil.rmtree(directory, ignore_errors=True)
    model.save_adapter(directory, name, with_head=False, use_safetensors=True)
    path = os.path.join(directory, "adapter_config.json")
    config = json.load(open(path))
    config["model_name"] = os.path.basename(config["model_name"])   # the fixture folder, not an absolute path
    json.dump(config, open(path, "w"), indent=2, sort_keys=True)


def gradients_case(arch, config):
    model = model_with(arch, config, seed=30)
    with torch.no_grad():
        for n, p in trainable(model).items():
            p.copy_(torch.randn(p.shape) * 0.2)
    directory = os.path.join(OUT, f"{arch}-{config}")
    os.makedirs(directory, exist_ok=True)
    save(model, os.path.join(directory, "adapter"))
    ids, mask, labels = padded_batch(EXAMPLES[:2])
    loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
    loss.backward()
    golden = {"examples": EXAMPLES[:2], "loss": loss.item(),
              "grads": {n: flat(p.grad) for n, p in trainable(model).items()}, "logits": logits_of(model)}
    json.dump(golden, open(os.path.join(directory, "golden.json"), "w"))


def trajectory_case(arch, config):
    model = model_with(arch, config, seed=31)
    directory = os.path.join(OUT, f"{arch}-{config}")
    save(model, os.path.join(directory, "init"))
    params = list(trainable(model).values())
    lr = 1e-2
    opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    batches, losses, norms, _ = run_trajectory(model, params, opt)
    json.dump({"batches": batches, "losses": losses, "grad_norms": norms, "lr": lr, "warmup_steps": 2, "steps": 10,
               "weight_decay": 0.01, "max_grad_norm": 1.0}, open(os.path.join(directory, "trajectory.json"), "w"))


def ours_case(binary, config):
    arch = "tiny-llama"
    work = os.path.join(ROOT, ".build", "fixture-bottleneck")
    os.makedirs(work, exist_ok=True)
    data = write_train_data(work)
    out = os.path.join(OUT, f"ours-{config}")
    shutil.rmtree(out, ignore_errors=True)
    subprocess.run([binary, "train", "--model", os.path.join(FIX, "models", arch), "--data", data, "--output", out,
                    "--method", "adapter", "--adapter-config", CONFIGS[config], "--max-steps", "6", "--lr", "0.01",
                    "--batch-size", "2", "--seed", "3", "--dtype", "float32", "--template", "chatml"], check=True)
    keep_adapter_only(out)
    path = os.path.join(out, "adapter_config.json")
    config = json.load(open(path))
    config["model_name"] = arch
    json.dump(config, open(path, "w"), indent=2, sort_keys=True)
    model = AutoModelForCausalLM.from_pretrained(model_dir(arch), torch_dtype=torch.float32)
    adapters.init(model)
    name = model.load_adapter(out, use_safetensors=True)
    model.set_active_adapters(name)
    json.dump({"examples": EXAMPLES[:2], "logits": logits_of(model)}, open(os.path.join(OUT, f"ours-{config}.json"), "w"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--peft-binary")
    args = ap.parse_args()
    torch.set_num_threads(2)
    os.makedirs(OUT, exist_ok=True)
    for config in CONFIGS:
        if args.peft_binary:
            ours_case(args.peft_binary, config)
            continue
        for arch in ["tiny-llama", "tiny-mistral"]:
            gradients_case(arch, config)
            trajectory_case(arch, config)
    print("wrote", OUT)


if __name__ == "__main__":
    main()
