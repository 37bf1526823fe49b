#!/usr/bin/env python3
"""llama.cpp (llama-cpp-python) as the peer of scripts/bench.py for GGUF files: greedy decode speed.

    llamacpp_peer.py MODEL.gguf PROMPT_IDS(comma list) NEW_TOKENS THREADS
Prints one JSON object on stdout.
"""
import json
import sys
import time

import llama_cpp
import numpy as np

path, ids, new_tokens, threads = sys.argv[1], [int(t) for t in sys.argv[2].split(",")], int(sys.argv[3]), int(sys.argv[4])
llm = llama_cpp.Llama(model_path=path, n_ctx=2048, n_threads=threads, n_threads_batch=threads, verbose=False)
t0 = time.perf_counter()
llm.eval(ids)
t1 = time.perf_counter()
for _ in range(new_tokens - 1):
    llm.eval([int(np.argmax(llm.scores[llm.n_tokens - 1]))])
t2 = time.perf_counter()
print(json.dumps({"prompt_tokens": len(ids), "prefill_tokens_per_second": len(ids) / (t1 - t0),
                  "decode_tokens_per_second": (new_tokens - 1) / (t2 - t1), "llama_cpp": llama_cpp.__version__}))
