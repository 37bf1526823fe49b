#!/usr/bin/env python3
"""Benchmark fixtures: small written question sets in MMLU's, C-Eval's and CMMLU's own CSV layouts (with
LLaMA-Factory's mapping.json), and what a torch re-implementation of LLaMA-Factory's evaluator predicts on them with
the tiny Qwen2 model of the pruning fixtures (models/tiny-qwen2-prune: its larger random weights vary the answers).

    python3 scripts/make_benchmark_fixtures.py
Needs: torch, transformers. Writes Tests/Fixtures/benchmarks/{mmlu,ceval,cmmlu}/ (3 subjects each, one per
category family, a quoted field with a comma and a line break among them) and golden/benchmark-<kind>.json: the
predicted letters per subject, with the four letters' scores and the last prompt's length, for 2-shot argmax scoring (the largest logit among the tokens A-D at the last
position) and, for MMLU, 1-shot loglikelihood scoring (the largest summed log-probability of " A" .. " D").

The evaluator as LLaMA-Factory states it: header (en "The following are multiple choice questions (with answers)
about {name}.\\n\\n", zh "以下是中国关于{name}考试的单项选择题，请选出其中的正确答案。\\n\\n") before the first message; each
question "question\\nA. ..\\nB. ..\\nC. ..\\nD. ..\\nAnswer:" (zh "\\n答案："), each shot's answer "X\\n\\n"; every message
encoded on its own (special tokens on the first only) and the ids joined.
"""
import csv
import json
import os
import shutil

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FIX = os.path.join(ROOT, "Tests", "Fixtures")
OUT = os.path.join(FIX, "benchmarks")
MODEL = os.path.join(FIX, "models", "tiny-qwen2-prune")
LETTERS = "ABCD"

SUBJECTS = {
    "mmlu": [("abstract_algebra", "abstract algebra", "STEM"), ("world_religions", "world religions", "Humanities"),
             ("econometrics", "econometrics", "Social Sciences")],
    "ceval": [("advanced_mathematics", "高等数学", "STEM"), ("modern_chinese_history", "近代史纲要", "Humanities"),
              ("physician", "医师资格", "Other")],
    "cmmlu": [("chinese_history", "中国历史", "Humanities"), ("traditional_chinese_medicine", "中医中药", "Other"),
              ("economics", "经济学", "Social Sciences")],
}


def questions(kind, subject, count, seed):
    """Written questions (the tests need layouts and tokens, not knowledge)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(count):
        # Short, so that two shots stay within the tiny model's 256 positions.
        if kind == "mmlu":
            q = f"Q{i} {subject[:6]}?"
            opts = [f"{c.lower()}{i}" for c in LETTERS]
        else:
            q = f"第{i}题？"
            opts = [f"{c}{i}" for c in LETTERS]
        if i == 1:
            q = q + "\nyes, no"   # quoted in the CSV
        answer = LETTERS[int(torch.randint(0, 4, (1,), generator=g))]
        out.append((q, opts, answer))
    return out


def write(kind):
    base = os.path.join(OUT, kind)
    shutil.rmtree(base, ignore_errors=True)
    splits = {"mmlu": ["dev", "val", "test"], "ceval": ["dev", "val", "test"], "cmmlu": ["dev", "test"]}[kind]
    data = {}
    for s, (sid, name, cat) in enumerate(SUBJECTS[kind]):
        for k, split in enumerate(splits):
            n = 3 if split == "dev" else 5 + s
            qs = questions(kind, sid, n, seed=100 * s + k)
            data[(sid, split)] = qs
            folder = os.path.join(base, "data", split) if kind == "mmlu" else os.path.join(base, split)
            os.makedirs(folder, exist_ok=True)
            path = os.path.join(folder, f"{sid}.csv" if kind == "cmmlu" else f"{sid}_{split}.csv")
            with open(path, "w", newline="", encoding="utf-8") as f:
                w = csv.writer(f)
                if kind == "ceval":
                    w.writerow(["id", "question", "A", "B", "C", "D", "answer", "explanation"])
                elif kind == "cmmlu":
                    w.writerow(["", "Question", "A", "B", "C", "D", "Answer"])
                for i, (q, opts, ans) in enumerate(qs):
                    if kind == "mmlu":
                        w.writerow([q] + opts + [ans])
                    elif kind == "ceval":
                        # C-Eval hides its test answers.
                        w.writerow([i, q] + opts + ["" if split == "test" else ans, ""])
                    else:
                        w.writerow([i, q] + opts + [ans])
    mapping = {sid: {"name": name, "category": cat} for sid, name, cat in SUBJECTS[kind]}
    json.dump(mapping, open(os.path.join(base, "mapping.json"), "w"), ensure_ascii=False, indent=1)
    return data


def evaluate(kind, data, tok, model, split, n_shot, scoring):
    zh = kind != "mmlu"
    letters = [tok.encode(c, add_special_tokens=False)[-1] for c in LETTERS]
    conts = [tok.encode(" " + c, add_special_tokens=False) for c in LETTERS]
    results = {}
    for sid, name, cat in SUBJECTS[kind]:
        def text(q):
            s = q[0] + "".join(f"\n{c}. {o}" for c, o in zip(LETTERS, q[1]))
            return s + ("\n答案：" if zh else "\nAnswer:")
        header = f"以下是中国关于{name}考试的单项选择题，请选出其中的正确答案。\n\n" if zh else \
            f"The following are multiple choice questions (with answers) about {name}.\n\n"
        preds, values = [], []
        for q in data[(sid, split)]:
            pieces = []
            for shot in data[(sid, "dev")][:n_shot]:
                pieces += [text(shot), shot[2] + "\n\n"]
            pieces.append(text(q))
            pieces[0] = header + pieces[0]
            ids = []
            for i, p in enumerate(pieces):
                ids += tok.encode(p, add_special_tokens=i == 0)
            with torch.no_grad():
                if scoring == "argmax":
                    logits = model(torch.tensor([ids])).logits[0, -1]
                    preds.append(LETTERS[int(torch.argmax(logits[letters]))])
                    values.append(logits[letters].tolist())
                else:
                    scores = []
                    for c in conts:
                        full = ids + c
                        lp = torch.log_softmax(model(torch.tensor([full])).logits[0].double(), -1)
                        scores.append(sum(lp[len(ids) - 1 + j, c[j]].item() for j in range(len(c))))
                    preds.append(LETTERS[max(range(4), key=lambda k: (scores[k], -k))])
                    values.append(scores)
        answers = [q[2] for q in data[(sid, split)]]
        results[sid] = {"predictions": preds, "category": cat, "scores": values, "prompt_tokens": len(ids),
                        "correct": sum(p == a for p, a in zip(preds, answers)) if not (kind == "ceval" and split == "test") else None}
    return results


def main():
    tok = AutoTokenizer.from_pretrained(MODEL)
    model = AutoModelForCausalLM.from_pretrained(MODEL, dtype=torch.float32).eval()
    for kind in SUBJECTS:
        data = write(kind)
        split = "val" if kind == "ceval" else "test"
        golden = {"split": split, "argmax_2shot": evaluate(kind, data, tok, model, split, 2, "argmax")}
        if kind == "mmlu":
            golden["loglikelihood_1shot"] = evaluate(kind, data, tok, model, split, 1, "loglikelihood")
        json.dump(golden, open(os.path.join(FIX, "golden", f"benchmark-{kind}.json"), "w"), ensure_ascii=False, indent=1)
        print(kind, {k: v["predictions"] for k, v in golden["argmax_2shot"].items()})


if __name__ == "__main__":
    main()
