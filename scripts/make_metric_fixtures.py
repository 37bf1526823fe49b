#!/usr/bin/env python3
"""Builds Tests/EvaluationTests/Fixtures/metric_fixtures.json, the golden values for the Evaluation metrics.

For each fixed prediction/reference pair below it records the MetricTokenizer tokens (from the Python port in
`metric_tokens`, which must follow Sources/Evaluation/MetricTokenizer.swift rule for rule), the smoothed sentence
BLEU-4 (nltk `sentence_bleu` with `SmoothingFunction().method1`, epsilon 0.1) and the ROUGE-1/2/L F1 of
`rouge_score.rouge_scorer.RougeScorer` fed the same tokens through a pass-through tokenizer. For a few corpora (lists
of pair indices) it records nltk `corpus_bleu` (no smoothing), mean ROUGE F1, exact match and name match.
All scores are percentages (x100). nltk returns about 1e-75 instead of 0 for a corpus with a zero n-gram precision
(n >= 2); that raw value is kept in `nltk_bleu4_raw` and `bleu4` holds the 0 the Swift code returns.

Usage (from the package root): python3 scripts/make_metric_fixtures.py [output-dir]
Needs: nltk, rouge-score (pip). Nothing here runs during `swift test`.
"""
import json
import re
import sys
import unicodedata
import warnings
from importlib.metadata import version
from pathlib import Path

from nltk.translate.bleu_score import SmoothingFunction, corpus_bleu, sentence_bleu
from rouge_score import rouge_scorer

ROOT = Path(__file__).resolve().parent.parent
OUT = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "Tests" / "EvaluationTests" / "Fixtures"
NAME_REGEX = "推荐用药：([^。]+)"

# --- Python port of MetricTokenizer.swift -------------------------------------------------------------------------
# Unicode White_Space property (PropList.txt); Swift's `Unicode.Scalar.Properties.isWhitespace`.
WHITE_SPACE = set(range(0x09, 0x0E)) | {0x20, 0x85, 0xA0, 0x1680} | set(range(0x2000, 0x200B)) \
    | {0x2028, 0x2029, 0x202F, 0x205F, 0x3000}
CJK_RANGES = [
    (0x1100, 0x11FF), (0x2E80, 0x2FDF), (0x2FF0, 0x2FFF), (0x3000, 0x303F), (0x3040, 0x30FF), (0x3100, 0x312F),
    (0x3130, 0x318F), (0x3190, 0x31FF), (0x3200, 0x33FF), (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xA960, 0xA97F),
    (0xAC00, 0xD7FF), (0xF900, 0xFAFF), (0xFE30, 0xFE4F), (0xFF00, 0xFFEF), (0x20000, 0x3FFFD),
]


def is_cjk(cp):
    return any(lo <= cp <= hi for lo, hi in CJK_RANGES)


def metric_tokens(text):
    """Whitespace separates; each CJK scalar is a token; runs of L*/N*/M* scalars are one token; else one scalar."""
    tokens, word = [], []
    for ch in unicodedata.normalize("NFC", text):
        cp = ord(ch)
        if cp in WHITE_SPACE:
            kind = "space"
        elif is_cjk(cp):
            kind = "single"
        elif unicodedata.category(ch)[0] in "LNM":
            kind = "word"
        else:
            kind = "single"
        if kind == "word":
            word.append(ch)
            continue
        if word:
            tokens.append("".join(word))
            word = []
        if kind == "single":
            tokens.append(ch)
    if word:
        tokens.append("".join(word))
    return tokens


class PassThrough:
    """rouge-score tokenizer that returns the tokens we stored for a text (no lowercasing, no punctuation removal)."""

    def tokenize(self, text):
        return metric_tokens(text)


# --- Fixed pairs: (prediction, reference) ------------------------------------------------------------------------
LEAFLET = "推荐用药：银翘解毒片。\n主要成分：金银花、连翘。"
PAIRS = [
    (LEAFLET, LEAFLET),                                                                        # 0 identical leaflet
    ("推荐用药：桑菊感冒片。\n主要成分：桑叶、菊花。", LEAFLET),                                   # 1 other drug, same form
    ("推荐用药：银翘解毒片。", LEAFLET),                                                       # 2 prediction cut short
    ("建议多喝水，注意休息。", "推荐用药：板蓝根颗粒。\n用法用量：开水冲服，一次1袋，一日3次。"),     # 3 no name in prediction
    ("推荐用药：板蓝根颗粒。", "请咨询医生或药师。"),                                             # 4 no name in reference
    ("The cat sat on the mat.", "The cat sat on the mat."),                                   # 5 English identical
    ("the cat sat on the mat", "the cat sat on a mat"),                                       # 6 English close
    ("Quantum chromodynamics describes quarks.", "Take two tablets after meals."),           # 7 totally different
    ("推荐用药：Aspirin 100mg。每日1次。", "推荐用药：阿司匹林肠溶片 100 mg。每日1次，饭后服用。"),  # 8 mixed
    ("", LEAFLET),                                                                            # 9 empty prediction
    ("推荐用药：感冒灵颗粒。", ""),                                                              # 10 empty reference
    ("", ""),                                                                                 # 11 both empty
    ("好的", "好的，谢谢。"),                                                                    # 12 shorter than 4 tokens
    ("  推荐用药：板蓝根颗粒。 \n", "推荐用药：板蓝根颗粒。"),                                      # 13 exact after trimming
    ("アスピリンを飲んでください。", "アスピリンを服用してください。"),                              # 14 Japanese kana
    ("the the the the the the", "the cat is on the mat"),                                     # 15 clipping
    ("cafe\u0301 na\u00efve \u2013 \u201cquotes\u201d \U0001F600 don't", "café naïve – “quotes” 😀 do not"),  # 16 NFC
    ("５００ｍｇ，每日３次。Take 2 tablets,\ttwice a day!", "500mg，每日3次。Take 2 tablets, twice daily."),     # 17 widths
]

CORPORA = {
    "all": list(range(len(PAIRS))),
    "leaflets": [0, 1, 2, 3],
    "english": [5, 6, 7, 15],
    "zero_4gram_precision": [7, 12, 15],
    "empty_only": [9, 11],
    "single_identical": [0],
}


def bleu_inputs(indices):
    refs = [[metric_tokens(PAIRS[i][1])] for i in indices]
    hyps = [metric_tokens(PAIRS[i][0]) for i in indices]
    return refs, hyps


def main():
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], tokenizer=PassThrough())
    smooth = SmoothingFunction().method1
    pairs, rouge_cache = [], []
    for i, (pred, ref) in enumerate(PAIRS):
        pt, rt = metric_tokens(pred), metric_tokens(ref)
        r = scorer.score(ref, pred)  # rouge-score takes (target, prediction)
        rouge_cache.append(r)
        pairs.append({
            "index": i, "prediction": pred, "reference": ref,
            "prediction_tokens": pt, "reference_tokens": rt,
            "sentence_bleu4": 100 * float(sentence_bleu([rt], pt, smoothing_function=smooth)),
            "rouge1": 100 * r["rouge1"].fmeasure, "rouge2": 100 * r["rouge2"].fmeasure,
            "rougeL": 100 * r["rougeL"].fmeasure,
        })
    corpora = []
    for name, indices in CORPORA.items():
        refs, hyps = bleu_inputs(indices)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # nltk warns about zero n-gram overlaps
            raw = 100 * float(corpus_bleu(refs, hyps))
        n = len(indices)
        exact = sum(PAIRS[i][0].strip() == PAIRS[i][1].strip() for i in indices)
        hits = skipped = 0
        for i in indices:
            want = re.search(NAME_REGEX, PAIRS[i][1])
            if want is None:
                skipped += 1
                continue
            got = re.search(NAME_REGEX, PAIRS[i][0])
            hits += got is not None and got.group(1).strip() == want.group(1).strip()
        judged = n - skipped
        corpora.append({
            "name": name, "indices": indices,
            "bleu4": 0.0 if raw < 1e-60 else raw, "nltk_bleu4_raw": raw,
            "rouge1": sum(100 * rouge_cache[i]["rouge1"].fmeasure for i in indices) / n,
            "rouge2": sum(100 * rouge_cache[i]["rouge2"].fmeasure for i in indices) / n,
            "rougeL": sum(100 * rouge_cache[i]["rougeL"].fmeasure for i in indices) / n,
            "exact_match": 100 * exact / n,
            "name_match": 100 * hits / judged if judged else None,
            "name_match_skipped": skipped,
            "count": n,
        })
    doc = {
        "generator": "scripts/make_metric_fixtures.py",
        "versions": {"python": sys.version.split()[0], "nltk": version("nltk"), "rouge-score": version("rouge-score"),
                     "unicodedata": unicodedata.unidata_version},
        "sentence_smoothing": "nltk SmoothingFunction().method1 (epsilon 0.1)",
        "name_regex": NAME_REGEX,
        "pairs": pairs,
        "corpora": corpora,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "metric_fixtures.json"
    path.write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {path} ({len(pairs)} pairs, {len(corpora)} corpora)")


if __name__ == "__main__":
    main()
