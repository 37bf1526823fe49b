#!/usr/bin/env python3
"""Golden numbers for every PEFT method beside LoRA (DoRA, IA3, prompt tuning, P-tuning, prefix tuning), from
Python PEFT + torch, on two tiny architectures (Qwen2 with q/k/v bias and tied embeddings; Llama without biases).

Run from the repository root after scripts/make_model_fixtures.py:
    python3 scripts/make_method_fixtures.py [--peft-binary .build/release/peft]
Needs: torch, transformers (5.x), peft (0.21). Writes Tests/Fixtures/methods/<arch>-<case>/ with
  - adapter/            what PEFT's save_pretrained writes for the adapter (all parameters random and non-zero)
  - trainable.safetensors every trainable parameter under its PEFT name (".default" dropped): for P-tuning and
                        prefix tuning with a projection this holds the encoder, which the saved adapter does not
  - golden.json         loss and every trainable gradient of a 2-example batch (answer-only labels), eval-mode
                        logits of two sequences, and (for DoRA / IA3) the logits after merge_and_unload
  - init/ + trajectory.json  PEFT's own initial adapter (and trainable state) and 10 AdamW steps of torch
With --peft-binary it also trains each method with *our* tool and records the logits PEFT computes with it
(Tests/Fixtures/methods/ours-<case>/).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys

import torch
from peft import (IA3Config, LoraConfig, PeftModel, PrefixTuningConfig, PromptEncoderConfig, PromptTuningConfig,
                  get_peft_model)
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_peft_fixtures import EXAMPLES, keep_adapter_only, padded_batch, run_trajectory, write_train_data  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FIX = os.path.join(ROOT, "Tests", "Fixtures")
OUT = os.path.join(FIX, "methods")
ALL = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def configs():
    """case name -> PEFT config factory (fresh object each call: PEFT mutates configs)."""
    return {
        "dora": lambda: LoraConfig(r=4, lora_alpha=8, target_modules=ALL, lora_dropout=0.0, use_dora=True,
                                   task_type="CAUSAL_LM"),
        "ia3": lambda: IA3Config(target_modules=["k_proj", "v_proj", "down_proj"], feedforward_modules=["down_proj"],
                                 task_type="CAUSAL_LM"),
        "prompt": lambda: PromptTuningConfig(num_virtual_tokens=4, task_type="CAUSAL_LM"),
        "ptuning": lambda: PromptEncoderConfig(num_virtual_tokens=4, encoder_hidden_size=16, task_type="CAUSAL_LM"),
        "ptuning-lstm": lambda: PromptEncoderConfig(num_virtual_tokens=4, encoder_hidden_size=8,
                                                    encoder_reparameterization_type="LSTM", task_type="CAUSAL_LM"),
        "prefix": lambda: PrefixTuningConfig(num_virtual_tokens=4, task_type="CAUSAL_LM"),
        "prefix-proj": lambda: PrefixTuningConfig(num_virtual_tokens=3, prefix_projection=True,
                                                  encoder_hidden_size=24, task_type="CAUSAL_LM"),
    }


def base(arch):
    return AutoModelForCausalLM.from_pretrained(os.path.join(FIX, "models", arch), dtype=torch.float32)


def trainable(model):
    return {n.replace(".default", ""): p for n, p in model.named_parameters() if p.requires_grad}


def randomise(case, model):
    """Every trainable parameter random and non-zero (PEFT's defaults leave B / magnitude-1 / IA3-1 degenerate)."""
    with torch.no_grad():
        for name, p in trainable(model).items():
            if "lora_magnitude_vector" in name:
                p.mul_(1 + 0.2 * torch.randn(p.shape))
            elif "lora_" in name:
                p.copy_(torch.randn(p.shape) * 0.3)
            elif "ia3_l" in name:
                p.copy_(1 + 0.3 * torch.randn(p.shape))
            elif case == "prompt":
                p.copy_(torch.randn(p.shape) * 0.5)


def flat(t):
    return t.detach().flatten().tolist()


def portable(adapter_dir):
    """Drops PEFT's README and names the base model by its fixture folder rather than an absolute path."""
    os.remove(os.path.join(adapter_dir, "README.md"))
    path = os.path.join(adapter_dir, "adapter_config.json")
    config = json.load(open(path))
    config["base_model_name_or_path"] = os.path.basename(config["base_model_name_or_path"])
    json.dump(config, open(path, "w"), indent=2, sort_keys=True)


def save_case(model, directory):
    shutil.rmtree(directory, ignore_errors=True)
    model.save_pretrained(os.path.join(directory, "adapter"))
    portable(os.path.join(directory, "adapter"))
    save_file({k: v.detach().contiguous() for k, v in trainable(model).items()},
              os.path.join(directory, "trainable.safetensors"))


def eval_logits(model):
    model.eval()
    with torch.no_grad():
        out = [flat(model(torch.tensor([e["ids"]])).logits[0]) for e in EXAMPLES[:2]]
    model.train()
    return out


def gradients_case(arch, case, make):
    torch.manual_seed(20)
    model = get_peft_model(base(arch), make())
    randomise(case, model)
    directory = os.path.join(OUT, f"{arch}-{case}")
    save_case(model, directory)
    ids, mask, labels = padded_batch(EXAMPLES[:2])
    result = model(input_ids=ids, attention_mask=mask, labels=labels)
    result.loss.backward()
    golden = {"examples": EXAMPLES[:2], "loss": result.loss.item(),
              "grads": {k: flat(p.grad) for k, p in trainable(model).items()},
              "logits": eval_logits(model)}
    # What PEFT computes from the saved adapter alone (inference mode: prompt encoders are not saved).
    loaded = PeftModel.from_pretrained(base(arch), os.path.join(directory, "adapter")).eval()
    golden["loaded_logits"] = eval_logits(loaded)
    if case in ("dora", "ia3"):
        merged = loaded.merge_and_unload().eval()
        with torch.no_grad():
            golden["merged_logits"] = [flat(merged(torch.tensor([e["ids"]])).logits[0]) for e in EXAMPLES[:2]]
    json.dump(golden, open(os.path.join(directory, "golden.json"), "w"))


def trajectory_case(arch, case, make):
    """10 AdamW steps from PEFT's default initialisation (linear warmup 2 / decay, weight decay 0.01, clip 1.0)."""
    torch.manual_seed(21)
    model = get_peft_model(base(arch), make())
    directory = os.path.join(OUT, f"{arch}-{case}", "init")
    save_case(model, directory)
    params = [p for p in model.parameters() if p.requires_grad]
    lr = 2e-2
    opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    batches, losses, norms, _ = run_trajectory(model, params, opt)
    json.dump({"batches": batches, "losses": losses, "grad_norms": norms, "lr": lr, "warmup_steps": 2, "steps": 10,
               "weight_decay": 0.01, "max_grad_norm": 1.0},
              open(os.path.join(OUT, f"{arch}-{case}", "trajectory.json"), "w"))


OURS_FLAGS = {
    "lora": ["--lora-r", "4", "--lora-alpha", "8", "--target-modules", "q_proj,v_proj,down_proj"],
    "dora": ["--lora-r", "4", "--lora-alpha", "8", "--target-modules", "q_proj,v_proj,down_proj"],
    "ia3": [],
    "prompt": ["--num-virtual-tokens", "5"],
    "ptuning": ["--num-virtual-tokens", "5", "--encoder-hidden-size", "32"],
    "prefix": ["--num-virtual-tokens", "5"],
}


def ours_case(binary, method):
    """Our tool trains `method`; PEFT loads the adapter; its logits become the golden."""
    arch = "tiny-qwen2"
    work = os.path.join(ROOT, ".build", "fixture-methods")
    os.makedirs(work, exist_ok=True)
    data = write_train_data(work)
    out = os.path.join(OUT, f"ours-{method}")
    shutil.rmtree(out, ignore_errors=True)
    subprocess.run([binary, "train", "--model", os.path.join(FIX, "models", arch), "--data", data, "--output", out,
                    "--method", method, "--max-steps", "6", "--lr", "0.05", "--batch-size", "2", "--seed", "3",
                    "--dtype", "float32"] + (["--lora-dropout", "0"] if method in ("lora", "dora") else [])
                   + OURS_FLAGS[method], check=True)
    keep_adapter_only(out)
    path = os.path.join(out, "adapter_config.json")
    config = json.load(open(path))
    config["base_model_name_or_path"] = arch
    json.dump(config, open(path, "w"), indent=2, sort_keys=True)
    model = PeftModel.from_pretrained(base(arch), out).eval()
    golden = {"examples": EXAMPLES[:2], "logits": eval_logits(model)}
    if method in ("lora", "dora", "ia3"):
        merged = model.merge_and_unload().eval()
        with torch.no_grad():
            golden["merged_logits"] = [flat(merged(torch.tensor([e["ids"]])).logits[0]) for e in EXAMPLES[:2]]
    json.dump(golden, open(os.path.join(OUT, f"ours-{method}.json"), "w"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--peft-binary")
    ap.add_argument("--only", help="comma list of cases")
    args = ap.parse_args()
    torch.set_num_threads(2)
    os.makedirs(OUT, exist_ok=True)
    only = set(args.only.split(",")) if args.only else None
    if args.peft_binary:
        for method in OURS_FLAGS:
            if only is None or method in only:
                ours_case(args.peft_binary, method)
        return
    for arch in ["tiny-qwen2", "tiny-llama"]:
        for case, make in configs().items():
            if only is not None and case not in only:
                continue
            gradients_case(arch, case, make)
            trajectory_case(arch, case, make)
    print("wrote", OUT)


if __name__ == "__main__":
    main()
