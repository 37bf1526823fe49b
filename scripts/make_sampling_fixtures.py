#!/usr/bin/env python3
"""Golden outputs of transformers' logits processors (repetition penalty, no-repeat-n-gram, temperature, top-k,
top-p, min-p) on fixed logits, for the Swift sampler tests.

    python3 scripts/make_sampling_fixtures.py      # writes Tests/Fixtures/golden/sampling.json
"""
import json
import os

import torch
from transformers.generation.logits_process import (NoRepeatNGramLogitsProcessor, RepetitionPenaltyLogitsProcessor,
                                                    TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper,
                                                    MinPLogitsWarper)

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "Fixtures", "golden", "sampling.json")


def main():
    g = torch.Generator().manual_seed(0)
    logits = (torch.randn(1, 40, generator=g) * 3).float()
    history = torch.tensor([[3, 7, 7, 12, 3, 7, 25, 3]])
    cases = []
    for name, procs in [
        ("repetition_1.3", [RepetitionPenaltyLogitsProcessor(1.3)]),
        ("no_repeat_2", [NoRepeatNGramLogitsProcessor(2)]),
        ("no_repeat_3", [NoRepeatNGramLogitsProcessor(3)]),
        ("temperature_0.7", [TemperatureLogitsWarper(0.7)]),
        ("top_k_5", [TopKLogitsWarper(5)]),
        ("top_p_0.8", [TopPLogitsWarper(0.8)]),
        ("min_p_0.1", [MinPLogitsWarper(0.1)]),
        ("min_p_0.05_after_temperature", [TemperatureLogitsWarper(0.7), MinPLogitsWarper(0.05)]),
        ("all", [RepetitionPenaltyLogitsProcessor(1.1), NoRepeatNGramLogitsProcessor(2), TemperatureLogitsWarper(0.7),
                 TopKLogitsWarper(20), TopPLogitsWarper(0.8)]),
    ]:
        scores = logits.clone()
        for p in procs:
            scores = p(history, scores)
        cases.append({"name": name, "scores": [None if v == float("-inf") else v for v in scores[0].tolist()]})
    json.dump({"logits": logits[0].tolist(), "history": history[0].tolist(), "cases": cases}, open(OUT, "w"))
    print("wrote", OUT)


if __name__ == "__main__":
    main()
