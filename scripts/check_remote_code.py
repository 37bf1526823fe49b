#!/usr/bin/env python3
"""Checks the remote-code families' golden files against the families' own published modeling code.

`make_family_fixtures.py` computes the golden numbers of Qwen v1, InternLM2, Baichuan2 (7B and 13B) and GLM-4's
ChatGLM layout with plain-torch restatements of each family's remote code, since transformers 5 cannot run those
files. This script runs the published files themselves (the configuration_*.py, modeling_*.py and what they import
that a downloaded checkpoint of the family holds) on the same tiny checkpoints, and compares with the golden files:
the logits of every golden sequence, the 16-token greedy continuation (a cached generation, as the remote code's own
`generate` runs it: Qwen v1's dynamic NTK keeps the prefill's alpha) and the eval loss. The remote code needs the
transformers it was written for: run this with such a Python, e.g. a venv made with `--system-site-packages` and
`pip install 'transformers==4.46.3' einops transformers_stream_generator`.

    PYTHON scripts/check_remote_code.py --code qwen1=DIR [--code internlm2=DIR] [--code baichuan2=DIR]
                                        [--code baichuan2-13b=DIR] [--code chatglm=DIR]

Prints one line per checkpoint; exits 1 if any logit is off by more than --tolerance (default 1e-4) or a greedy token
or the loss differs.
"""
import argparse
import inspect
import json
import os
import shutil
import sys
import tempfile

import torch
import torch.nn.functional as F
from transformers import AutoModel, AutoModelForCausalLM

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
FIXTURES = os.path.join(ROOT, "Tests", "Fixtures")
# The tiny checkpoints of each family (make_family_fixtures.py), and the classes its remote code names.
FAMILIES = {
    "qwen1": (["tiny-qwen1", "tiny-qwen1-ntk"],
              {"AutoConfig": "configuration_qwen.QWenConfig", "AutoModelForCausalLM": "modeling_qwen.QWenLMHeadModel"}),
    "internlm2": (["tiny-internlm2"],
                  {"AutoConfig": "configuration_internlm2.InternLM2Config",
                   "AutoModelForCausalLM": "modeling_internlm2.InternLM2ForCausalLM"}),
    "baichuan2": (["tiny-baichuan2"],
                  {"AutoConfig": "configuration_baichuan.BaichuanConfig",
                   "AutoModelForCausalLM": "modeling_baichuan.BaichuanForCausalLM"}),
    "baichuan2-13b": (["tiny-baichuan2-13b"],
                      {"AutoConfig": "configuration_baichuan.BaichuanConfig",
                       "AutoModelForCausalLM": "modeling_baichuan.BaichuanForCausalLM"}),
    "chatglm": (["tiny-chatglm"],
                {"AutoConfig": "configuration_chatglm.ChatGLMConfig",
                 "AutoModel": "modeling_chatglm.ChatGLMForConditionalGeneration"}),
}
# The labelled sequence of the golden eval loss (make_family_fixtures.py's LABELLED).
LABELLED = {"ids": [301, 17, 42, 99, 3, 250, 7, 1, 64, 128, 77, 5], "labels": [-100] * 5 + [250, 7, 1, 64, 128, 77, 5]}


def load(fixture, code_dir, auto_map, work):
    """The fixture's model built by the family's code: a copy of the checkpoint with the code and an auto_map."""
    d = os.path.join(work, fixture.replace("-", "_"))  # transformers names the module after the folder
    shutil.copytree(os.path.join(FIXTURES, "models", fixture), d)
    for f in os.listdir(code_dir):
        if f.endswith(".py"):
            shutil.copy(os.path.join(code_dir, f), d)
    cfg_path = os.path.join(d, "config.json")
    cfg = json.load(open(cfg_path))
    cfg["auto_map"] = auto_map
    cfg.update(use_flash_attn=False, use_cache_kernel=False, bf16=False, fp16=False, fp32=True)  # Qwen v1's switches
    cfg.setdefault("use_cache", True)  # ChatGLM's config class has no default; its checkpoints write it
    json.dump(cfg, open(cfg_path, "w"))
    cls = AutoModelForCausalLM if "AutoModelForCausalLM" in auto_map else AutoModel
    model, info = cls.from_pretrained(d, trust_remote_code=True, torch_dtype=torch.float32, output_loading_info=True)
    missing = [k for k in info["missing_keys"] if "rotary" not in k and "inv_freq" not in k]
    if missing or info["unexpected_keys"]:
        sys.exit(f"{fixture}: the remote code names other weights: missing {missing}, "
                 f"unexpected {info['unexpected_keys']}")
    return model.eval()


def logits(model, ids):
    return model(input_ids=torch.tensor([ids])).logits[0].float()


def greedy(model, prompt, n=16):
    """n greedy tokens with the remote code's key/value cache (the prefill's rotary settings stay, as in its generate)."""
    # The new token's position, where the forward takes one (ChatGLM would otherwise put it at 0, as its generate
    # does not); Baichuan's 13B (ALiBi) takes none.
    positions = "position_ids" in inspect.signature(model.forward).parameters
    out = model(input_ids=torch.tensor([prompt]), use_cache=True)
    ids, past = list(prompt), out.past_key_values
    for _ in range(n):
        nxt = int(out.logits[0, -1].argmax())
        ids.append(nxt)
        extra = {"position_ids": torch.tensor([[len(ids) - 1]])} if positions else {}
        out = model(input_ids=torch.tensor([[nxt]]), past_key_values=past, use_cache=True, **extra)
        past = out.past_key_values
    return ids[len(prompt):]


def check(fixture, model, tolerance):
    golden = json.load(open(os.path.join(FIXTURES, "golden", "family-" + fixture.removeprefix("tiny-") + ".json")))
    worst, scale = 0.0, 0.0
    with torch.no_grad():
        for seq, want in zip(golden["sequences"], golden["logits"]):
            got = logits(model, seq).flatten()
            want = torch.tensor(want)
            worst = max(worst, float((got - want).abs().max()))
            scale = max(scale, float(want.abs().max()))
        tokens = greedy(model, golden["greedy_prompt"], len(golden["greedy_continuation"]))
        lg = logits(model, LABELLED["ids"])
        loss = float(F.cross_entropy(lg, torch.tensor(LABELLED["labels"][1:] + [-100]), ignore_index=-100))
    same_tokens = tokens == golden["greedy_continuation"]
    loss_off = abs(loss - golden["loss"]) / abs(golden["loss"])
    ok = worst <= tolerance and same_tokens and loss_off <= 1e-5
    expected = golden["greedy_continuation"]
    tokens_note = "equal" if same_tokens else f"differs: {tokens} against {expected}"
    print(f"{fixture:<20} logits max |diff| {worst:.2e} (largest logit {scale:.2f}), greedy {tokens_note}, "
          f"loss {loss:.6f} against {golden['loss']:.6f} ({loss_off:.1e} relative): {'ok' if ok else 'FAILED'}")
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--code", action="append", default=[], metavar="FAMILY=DIR",
                    help=f"a family's remote code folder; families: {', '.join(FAMILIES)}")
    ap.add_argument("--tolerance", type=float, default=1e-4)
    args = ap.parse_args()
    if not args.code:
        ap.error("give at least one --code FAMILY=DIR")
    torch.manual_seed(0)
    ok = True
    with tempfile.TemporaryDirectory() as work:
        for spec in args.code:
            family, _, code_dir = spec.partition("=")
            if family not in FAMILIES or not os.path.isdir(code_dir):
                ap.error(f"--code {spec}: expected FAMILY=DIR with FAMILY one of {', '.join(FAMILIES)}")
            fixtures, auto_map = FAMILIES[family]
            for fixture in fixtures:
                ok &= check(fixture, load(fixture, code_dir, auto_map, work), args.tolerance)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
