#!/usr/bin/env python3
"""llama.cpp's own reference quantizers for all 12 GGML block formats: golden bytes for ours.

    /opt/llama/bin/python scripts/make_block_fixtures.py
        [--ggml /opt/llama/lib/python3.*/site-packages/llama_cpp/lib/libggml-base.so]

Calls quantize_row_<type>_ref from libggml-base (built from source by llama-cpp-python) for q4_0, q4_1, q5_0, q5_1,
q8_0, q2_k, q3_k, q4_k, q5_k, q6_k, iq4_nl and iq4_xs on 2048 deterministic values in 8 super-blocks of different
character (normal, all zeros, one outlier, all positive, tiny and negative-leaning, 16-value groups of very different
magnitude, sparse, wide mixed-sign ramps), and dequantizes the bytes with the `gguf` package. Writes
Tests/Fixtures/golden/blocks.json: {"source", "values", "<type>": {"bytes": hex, "dequantized": [...]}}.

One adjustment: in an iq4_nl block whose magnitudes are all below 1e-15 (here the zero super-block and any all-zero
block of the sparse one) this libggml-base build leaves its level buffer as it was (uninitialised stack, or the
previous block's levels) in the 16 index bytes; llama.cpp's current source writes zero indices there, as we do. The
script writes those bytes as zeros (d is 0 there either way, so the dequantized values are the same zeros).
"""
import argparse
import ctypes
import glob
import importlib.metadata
import json
import os

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import dequantize

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")

# name, GGML type, ggml symbol suffix, values a block, bytes a block
TYPES = [
    ("q4_0", T.Q4_0, "q4_0", 32, 18),
    ("q4_1", T.Q4_1, "q4_1", 32, 20),
    ("q5_0", T.Q5_0, "q5_0", 32, 22),
    ("q5_1", T.Q5_1, "q5_1", 32, 24),
    ("q8_0", T.Q8_0, "q8_0", 32, 34),
    ("q2_k", T.Q2_K, "q2_K", 256, 84),
    ("q3_k", T.Q3_K, "q3_K", 256, 110),
    ("q4_k", T.Q4_K, "q4_K", 256, 144),
    ("q5_k", T.Q5_K, "q5_K", 256, 176),
    ("q6_k", T.Q6_K, "q6_K", 256, 210),
    ("iq4_nl", T.IQ4_NL, "iq4_nl", 32, 18),
    ("iq4_xs", T.IQ4_XS, "iq4_xs", 256, 136),
]


def values():
    rng = np.random.RandomState(11)
    groups = 10.0 ** rng.uniform(-4, 1, 16)
    groups[[3, 9]] = 0
    blocks = [
        rng.randn(256) * 0.05,
        np.zeros(256),
        np.concatenate([rng.randn(255) * 0.02, [1.5]]),
        np.abs(rng.randn(256)) * 0.1 + 0.01,
        rng.randn(256) * 1e-6 - 5e-7,
        rng.randn(256) * np.repeat(groups, 16),
        np.where(rng.rand(256) < 0.9, 0.0, rng.randn(256)),
        np.linspace(-0.3, 0.2, 256) * np.sign(rng.randn(256)) * 40,
    ]
    return np.concatenate(blocks).astype(np.float32)


def main():
    ap = argparse.ArgumentParser()
    found = glob.glob("/opt/llama/lib/python3*/site-packages/llama_cpp/lib/libggml-base.so")
    ap.add_argument("--ggml", default=found[0] if found else None)
    args = ap.parse_args()
    lib = ctypes.CDLL(args.ggml)
    x = values()
    versioned = sorted(glob.glob(args.ggml + ".*.*.*"))   # libggml-base.so.<ggml version> beside it
    try:
        wheel = ", llama-cpp-python %s" % importlib.metadata.version("llama_cpp_python")
    except importlib.metadata.PackageNotFoundError:
        wheel = ""
    source = "%s%s quantize_row_*_ref; gguf %s dequantize" % (
        os.path.basename(versioned[-1] if versioned else args.ggml), wheel, importlib.metadata.version("gguf"))
    out = {"source": source, "values": x.tolist()}
    for name, qtype, sym, bs, bb in TYPES:
        fn = getattr(lib, "quantize_row_%s_ref" % sym)
        fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
        y = np.zeros(len(x) // bs * bb, dtype=np.uint8)
        fn(x.ctypes.data, y.ctypes.data, len(x))
        if name == "iq4_nl":   # stale index bytes of all-below-1e-15 blocks (see above): zeros, as llama.cpp now
            blocks = y.reshape(-1, bb)
            eps = np.abs(x.reshape(-1, bs)).max(axis=1) < 1e-15
            assert (blocks[eps, :2] == 0).all()
            blocks[eps, 2:] = 0
        back = dequantize(y, qtype).astype(np.float32).reshape(-1)
        out[name] = {"bytes": y.tobytes().hex(), "dequantized": back.tolist()}
    path = os.path.join(ROOT, "Tests", "Fixtures", "golden", "blocks.json")
    with open(path, "w") as f:
        json.dump(out, f)
    print("wrote", path)


if __name__ == "__main__":
    main()
