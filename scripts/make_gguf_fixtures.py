#!/usr/bin/env python3
"""What the `gguf` package (PyPI) reads from the GGUF files `peft quantize` writes: the golden for our exporter.

    python3 scripts/make_gguf_fixtures.py --peft-binary .build/debug/peft
Needs: numpy, gguf. For tiny-qwen2 in q8_0, q4_0 and f16 it writes Tests/Fixtures/gguf/<type>.json: every
metadata field (strings, numbers and arrays as gguf decodes them), every tensor's name, type and shape, and gguf's
dequantization of three tensors.
"""
import argparse
import json
import os
import subprocess
import tempfile

import numpy as np
from gguf import GGUFReader, GGUFValueType, quants

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FIX = os.path.join(ROOT, "Tests", "Fixtures")
CHECKED = ["token_embd.weight", "blk.0.attn_q.weight", "blk.1.ffn_down.weight"]


def field_value(field):
    if field.types[0] == GGUFValueType.ARRAY:
        return [field.contents(i) for i in range(len(field.data))]
    v = field.contents()
    return float(v) if isinstance(v, (float, np.floating)) else v


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--peft-binary", required=True)
    args = ap.parse_args()
    out_dir = os.path.join(FIX, "gguf")
    os.makedirs(out_dir, exist_ok=True)
    for kind in ["q8_0", "q4_0", "f16"]:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, f"tiny-{kind}.gguf")
            subprocess.run([args.peft_binary, "quantize", "--model", os.path.join(FIX, "models", "tiny-qwen2"),
                            "--type", kind, "--output", path], check=True)
            r = GGUFReader(path)
            fields = {k: field_value(f) for k, f in r.fields.items() if not k.startswith("GGUF.")}
            tensors = [{"name": t.name, "type": int(t.tensor_type), "shape": [int(d) for d in t.shape]} for t in r.tensors]
            values = {t.name: quants.dequantize(t.data, t.tensor_type).astype(np.float32).flatten().tolist()
                      for t in r.tensors if t.name in CHECKED}
        json.dump({"fields": fields, "tensors": tensors, "values": values}, open(os.path.join(out_dir, f"{kind}.json"), "w"))
    print("wrote", out_dir)


if __name__ == "__main__":
    main()
