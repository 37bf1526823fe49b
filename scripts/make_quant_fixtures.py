#!/usr/bin/env python3
"""Golden bytes for GGML block quantization from the `gguf` package (PyPI), whose numpy quantizers round exactly as
GGML's reference quantizers (q8_0, q4_0, q5_0) and whose dequantizers read every type (q4_k too).

    python3 scripts/make_quant_fixtures.py
Needs: numpy, gguf. Writes Tests/Fixtures/golden/quant.json:
  - values: 4 x 512 floats (normal, with outliers, a zero block, tiny values)
  - q8_0 / q4_0 / q5_0: gguf's quantized bytes (hex) and their dequantized values
  - q4_k_blocks: random q4_k super-blocks (valid f16 scales) as hex, and gguf's dequantized values
"""
import json
import os

import numpy as np
from gguf import GGMLQuantizationType, quants

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "Tests", "Fixtures", "golden", "quant.json")


def main():
    rng = np.random.default_rng(5)
    values = rng.standard_normal((4, 512)).astype(np.float32)
    values[1] *= 0.01
    values[2, 40] = 12.0          # an outlier
    values[2, 300] = -9.5
    values[3, 64:96] = 0.0        # an all-zero block
    values[3, 96:128] = 1e-6 * rng.standard_normal(32).astype(np.float32)
    golden = {"values": values.flatten().tolist()}
    for name, qtype in [("q8_0", GGMLQuantizationType.Q8_0), ("q4_0", GGMLQuantizationType.Q4_0),
                        ("q5_0", GGMLQuantizationType.Q5_0)]:
        q = quants.quantize(values, qtype)
        golden[name] = {"bytes": q.tobytes().hex(), "dequantized": quants.dequantize(q, qtype).flatten().tolist()}
    # q4_k: gguf has no quantizer; its dequantizer is the reference for random super-blocks.
    blocks = rng.integers(0, 256, size=(6, 144), dtype=np.uint8)
    scales = (rng.standard_normal((6, 2)) * 0.05).astype(np.float16)
    blocks[:, 0:4] = scales.view(np.uint8).reshape(6, 4)
    golden["q4_k_blocks"] = {"bytes": blocks.tobytes().hex(),
                             "dequantized": quants.dequantize(blocks, GGMLQuantizationType.Q4_K).flatten().tolist()}
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    json.dump(golden, open(OUT, "w"))
    print("wrote", OUT)


if __name__ == "__main__":
    main()
