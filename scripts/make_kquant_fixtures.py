#!/usr/bin/env python3
"""llama.cpp's own reference quantizers for the k-quants: golden bytes for ours.

    /opt/ref/bin/python scripts/make_kquant_fixtures.py [--ggml /opt/llama/lib/python3.*/site-packages/llama_cpp/lib/libggml-base.so]

Calls quantize_row_q4_K_ref and quantize_row_q6_K_ref from libggml-base (built from source by llama-cpp-python) on
2048 deterministic values in 8 super-blocks of different character (normal, all zeros, one outlier, all positive,
tiny, wide, sparse, mixed-sign ramps), and dequantizes the bytes with the `gguf` package. Writes
Tests/Fixtures/golden/kquants.json.
"""
import argparse
import ctypes
import glob
import json
import os

import numpy as np
from gguf import GGMLQuantizationType, dequantize

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def values():
    rng = np.random.RandomState(7)
    blocks = [
        rng.randn(256) * 0.05,
        np.zeros(256),
        np.concatenate([rng.randn(255) * 0.02, [1.5]]),
        np.abs(rng.randn(256)) * 0.1 + 0.01,
        rng.randn(256) * 1e-6,
        rng.randn(256) * 40,
        np.where(rng.rand(256) < 0.9, 0.0, rng.randn(256)),
        np.linspace(-0.3, 0.2, 256) * np.sign(rng.randn(256)),
    ]
    return np.concatenate(blocks).astype(np.float32)


def main():
    ap = argparse.ArgumentParser()
    found = glob.glob("/opt/llama/lib/python3*/site-packages/llama_cpp/lib/libggml-base.so")
    ap.add_argument("--ggml", default=found[0] if found else None)
    args = ap.parse_args()
    lib = ctypes.CDLL(args.ggml)
    x = values()
    out = {"values": x.tolist(), "source": os.path.basename(args.ggml)}
    for name, fn, qtype, block_bytes in [("q4_k", lib.quantize_row_q4_K_ref, GGMLQuantizationType.Q4_K, 144),
                                         ("q6_k", lib.quantize_row_q6_K_ref, GGMLQuantizationType.Q6_K, 210)]:
        y = np.zeros(len(x) // 256 * block_bytes, dtype=np.uint8)
        fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
        fn(x.ctypes.data, y.ctypes.data, len(x))
        back = dequantize(y, qtype).astype(np.float32).reshape(-1)
        out[name] = {"bytes": y.tobytes().hex(), "dequantized": back.tolist()}
    path = os.path.join(ROOT, "Tests", "Fixtures", "golden", "kquants.json")
    json.dump(out, open(path, "w"))
    print("wrote", path)


if __name__ == "__main__":
    main()
