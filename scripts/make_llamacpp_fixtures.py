#!/usr/bin/env python3
"""llama.cpp runs the GGUF files `peft quantize` writes: its greedy tokens become the golden for ours.

    python3 -m venv /opt/llama && /opt/llama/bin/pip install llama-cpp-python   # builds llama.cpp from source
    /opt/llama/bin/python scripts/make_llamacpp_fixtures.py --peft-binary .build/debug/peft
Writes Tests/Fixtures/gguf/llamacpp.json: for tiny-qwen2 in q8_0 and q4_0, tiny-llama (llama.cpp's `llama`
architecture, whose query/key rows the export reorders) and tiny-qwen3 in q8_0, two prompts (token ids), llama.cpp's
16 greedy tokens after each, and its logits of the last prompt position. Runs are keyed "q8_0" (tiny-qwen2) or
"MODEL/TYPE". The GGUF files themselves are rebuilt by the
test from the fixture model (the export is deterministic).
"""
import argparse
import json
import os
import subprocess
import tempfile

import llama_cpp
import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FIX = os.path.join(ROOT, "Tests", "Fixtures")
PROMPTS = [[301, 17, 42, 99, 3, 302, 198, 301], [5, 6, 7, 8, 9, 10]]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--peft-binary", required=True)
    args = ap.parse_args()
    golden = {"llama_cpp_version": llama_cpp.__version__, "prompts": PROMPTS, "runs": {}}
    for key, model, kind in [("q8_0", "tiny-qwen2", "q8_0"), ("q4_0", "tiny-qwen2", "q4_0"),
                             ("tiny-llama/q8_0", "tiny-llama", "q8_0"), ("tiny-qwen3/q8_0", "tiny-qwen3", "q8_0")]:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, f"{model}-{kind}.gguf")
            subprocess.run([args.peft_binary, "quantize", "--model", os.path.join(FIX, "models", model),
                            "--type", kind, "--output", path], check=True)
            llm = llama_cpp.Llama(model_path=path, n_ctx=256, n_threads=2, logits_all=True, verbose=False)
            runs = []
            for prompt in PROMPTS:
                llm.reset()
                llm.eval(prompt)
                first = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32).tolist()
                tokens = []
                for _ in range(16):
                    t = int(np.argmax(llm.scores[llm.n_tokens - 1]))
                    tokens.append(t)
                    llm.eval([t])
                runs.append({"tokens": tokens, "logits": first})
            golden["runs"][key] = runs
    out = os.path.join(FIX, "gguf", "llamacpp.json")
    json.dump(golden, open(out, "w"))
    print("wrote", out)


if __name__ == "__main__":
    main()
