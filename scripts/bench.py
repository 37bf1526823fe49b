#!/usr/bin/env python3
"""Benchmarks our `peft` against transformers (+ PEFT) on the same checkpoint and data, in one run, and prints
tokens/s, peak memory (max RSS of each process) and the ratios.

    python3 scripts/bench.py [generate|train|methods|serve|gemm|demo|prune|distill|benchmark|dpo|all] [--model DIR] [--steps N] [--new-tokens N]

`gemm` measures the built-in f32 GEMM (on the CPU tier in use) against oneDNN's matmul on the training shapes;
`demo` times `peft demo` with oneDNN and with the built-in GEMM (PEFT_GEMM=builtin). Every run first prints the CPU
tier the kernels use (set PEFT_CPU=scalar|avx2|avx512|neon to measure a lower one).

`methods` trains every PEFT method (lora, dora, ia3, prompt, ptuning, prefix) with both tools, same settings;
`full` compares full fine-tuning (and, with --big-model DIR, measures ours on a larger checkpoint).
`baseline --baseline PEFT` measures this build against another build of peft (an older commit's) on training,
decoding and GGUF decoding, alternating the two.
`dpo` measures `peft train --stage dpo` against the same step in torch + PEFT with TRL's loss; `benchmark` times `peft eval --benchmark mmlu` on --questions written 5-shot questions; `prune` times `peft prune` with each method on the checkpoint (calibration on --data); `distill` measures `peft
distill` (LoRA student, off-policy) against the same step in torch + PEFT with TRL's GKD loss (--teacher, default the
student checkpoint itself).
`serve` measures `peft serve` (batched decoding): time to first token and aggregate decode tokens/s for 1, 4, 8 and 16
concurrent streaming clients, against one `peft generate`.

Remote-code families (Qwen v1, InternLM2, Baichuan2: `make_bench_model.py --shape qwen1-0.5b|internlm2-0.5b|
baichuan2-0.5b --remote-code DIR`): the peer runs the family's own modeling code with `trust_remote_code`, in the
Python given by --peer-python (one with the transformers that code was written for, e.g. 4.46).

Default checkpoint: Qwen2.5-0.5B shapes with random bf16 weights (scripts/make_bench_model.py; the cost of a
forward does not depend on the weights), Qwen tokenizer from ../shared/qwen-tokenizer. Needs a release build
(`swift build -c release`) and, for the peer, torch + transformers + peft from PyPI. Run it on a quiet machine:
the numbers are wall-clock rates.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
PEFT = os.path.join(ROOT, ".build", "release", "peft")
PEER = os.path.join(ROOT, "scripts", "bench", "peer.py")
# The Python that runs the peer (--peer-python: e.g. a venv with the older transformers a remote-code family needs).
PEER_PYTHON = sys.executable
PROMPT = "请介绍一下中成药的常见剂型，并说明服用时需要注意什么。"


def measured(cmd, env=None):
    """Runs cmd under GNU time; returns (stdout, peak RSS in bytes)."""
    with tempfile.NamedTemporaryFile("r", suffix=".txt") as t:
        p = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", t.name] + cmd, capture_output=True, text=True,
                           env=env)
        if p.returncode != 0:
            sys.exit(f"failed: {' '.join(cmd)}\n{p.stderr[-3000:]}")
        return p.stdout, int(open(t.name).read().strip().splitlines()[-1]) * 1024


def gb(n):
    return f"{n / 1e9:.2f} GB"


def row(name, rate, rss, base=None):
    ratio = f"  {rate / base[0]:.2f}x speed, {rss / base[1]:.2f}x memory" if base else ""
    print(f"  {name:<44} {rate:8.1f} tokens/s  {gb(rss):>9}{ratio}")


def bench_generate(model, new_tokens):
    print(f"\nGreedy generation, {new_tokens} new tokens ({model})")
    results = {}
    for dtype in ["bfloat16", "float32"]:
        out, rss = measured([PEER_PYTHON, PEER, "generate", model, PROMPT, str(new_tokens), dtype])
        results[("peer", dtype)] = (json.loads(out), rss)
    for dtype in ["bfloat16", "float32"]:
        out, rss = measured([PEFT, "generate", "--model", model, "--prompt", PROMPT, "--max-new-tokens",
                             str(new_tokens), "--temperature", "0", "--json", "--dtype", dtype])
        results[("ours", dtype)] = (json.loads(out), rss)
    best_peer = max(results[("peer", d)][0]["decode_tokens_per_second"] for d in ["bfloat16", "float32"])
    for phase in ["prefill", "decode"]:
        print(f" {phase}:")
        for dtype in ["bfloat16", "float32"]:
            peer, peer_rss = results[("peer", dtype)]
            ours, ours_rss = results[("ours", dtype)]
            key = f"{phase}_tokens_per_second"
            row(f"transformers {dtype}", peer[key], peer_rss)
            row(f"peft (ours) {dtype}", ours[key], ours_rss, (peer[key], peer_rss))
    ours_best = results[("ours", "bfloat16")][0]["decode_tokens_per_second"]
    print(f" decode, ours bfloat16 vs the peer's best: {ours_best / best_peer:.2f}x")
    # Decoding reads every weight once per token (the tied head once): its rate against the machine's bandwidth.
    info = json.loads(subprocess.run([PEFT, "info", "--model", model, "--json"], capture_output=True, text=True,
                                     check=True).stdout)
    # A mixture of experts reads its chosen experts only (`peft info`'s active parameters).
    weights = info.get("active_parameters", info["parameters"]) * 2
    bandwidth = read_bandwidth(os.cpu_count())
    active = f" (the {info['experts']['per_token']} chosen of {info['experts']['count']} experts)" if info.get("experts") else ""
    print(f" decode, ours bfloat16: {weights / 1e9:.2f} GB of weights a token{active} = {ours_best * weights / 1e9:.1f} GB/s,"
          f" {100 * ours_best * weights / 1e9 / bandwidth:.0f}% of this machine's read bandwidth ({bandwidth:.1f} GB/s)")
    return results


def bench_train(model, data, steps, batch, maxlen, peer_bf16=True, targets="q_proj,v_proj", target_parameters=""):
    experts = f" and {target_parameters} (no dropout)" if target_parameters else ""
    print(f"\nLoRA r=8 on {targets}{experts}, batch {batch}, max length {maxlen}, {steps} timed steps ({os.path.basename(data)})")
    peer = {}
    peer_env = {**os.environ, "PEFT_BENCH_TARGETS": targets, "PEFT_BENCH_TARGET_PARAMETERS": target_parameters}
    ours_extra = ["--target-parameters", target_parameters] if target_parameters else []
    configs = [("fp32", "float32", "0"), ("fp32 + checkpointing", "float32", "1"), ("bf16 + checkpointing", "bfloat16", "1")]
    # --no-peer-bf16: torch's bf16 on a CPU without bf16 instructions (AVX2) is many times slower than its fp32.
    for name, dtype, ckpt in configs if peer_bf16 else configs[:2]:
        out, rss = measured([PEER_PYTHON, PEER, "train", model, data, str(steps), str(batch), str(maxlen), dtype, ckpt],
                            env=peer_env)
        peer[name] = (json.loads(out)["tokens_per_second"], rss)
        row(f"transformers+peft {name}", *peer[name])
    fastest = max(peer.values(), key=lambda v: v[0])
    for name, flags in [("fp32", ["--dtype", "float32"]),
                        ("fp32 + checkpointing", ["--dtype", "float32", "--gradient-checkpointing"]),
                        ("bf16", ["--dtype", "bfloat16"]),
                        ("bf16 + checkpointing", ["--dtype", "bfloat16", "--gradient-checkpointing"])]:
        with tempfile.TemporaryDirectory() as out_dir:
            _, rss = measured([PEFT, "train", "--model", model, "--data", data, "--output", out_dir, "--max-steps",
                               str(steps + 1), "--batch-size", str(batch), "--max-length", str(maxlen), "--lora-r", "8",
                               "--target-modules", targets] + ours_extra + flags)
            log = [json.loads(l) for l in open(os.path.join(out_dir, "train_log.jsonl")) if '"train"' in l]
            # Exclude the first step (warm-up), like the peer.
            rate = (log[-1]["tokens"] - log[0]["tokens"]) / (log[-1]["elapsed_seconds"] - log[0]["elapsed_seconds"])
        row(f"peft (ours) {name}", rate, rss, fastest)
    print(f" (ratios against the peer's fastest: {fastest[0]:.1f} tokens/s at {gb(fastest[1])})")


# Our flags for each method; scripts/bench/peer.py's method_config gives PEFT the same settings.
METHOD_FLAGS = {
    "lora": ["--lora-r", "8", "--target-modules", "q_proj,v_proj"],
    "dora": ["--lora-r", "8", "--target-modules", "q_proj,v_proj"],
    "ia3": [],
    "prompt": ["--num-virtual-tokens", "20"],
    "ptuning": ["--num-virtual-tokens", "20"],
    "prefix": ["--num-virtual-tokens", "20"],
}


def ours_train(model, data, steps, batch, maxlen, flags):
    """Runs `peft train`; returns (tokens/s excluding the first step, peak RSS)."""
    with tempfile.TemporaryDirectory() as out_dir:
        _, rss = measured([PEFT, "train", "--model", model, "--data", data, "--output", out_dir, "--max-steps",
                           str(steps + 1), "--batch-size", str(batch), "--max-length", str(maxlen)] + flags)
        log = [json.loads(l) for l in open(os.path.join(out_dir, "train_log.jsonl")) if '"train"' in l]
        rate = (log[-1]["tokens"] - log[0]["tokens"]) / (log[-1]["elapsed_seconds"] - log[0]["elapsed_seconds"])
    return rate, rss


def bench_methods(model, data, steps, batch, maxlen, methods):
    print(f"\nEvery method, batch {batch}, max length {maxlen}, {steps} timed steps: PEFT float32 (its fastest) "
          f"against ours (bfloat16 products where oneDNN has them, the training default; and float32)")
    print(f"  {'method':<10} {'PEFT fp32':>22} {'ours bf16':>22} {'ours fp32':>22}   speed / memory vs PEFT")
    for method in methods:
        out, peer_rss = measured([PEER_PYTHON, PEER, "train", model, data, str(steps), str(batch), str(maxlen),
                                  "float32", "0", method])
        peer_rate = json.loads(out)["tokens_per_second"]
        bf = ours_train(model, data, steps, batch, maxlen, ["--method", method, "--dtype", "bfloat16"] + METHOD_FLAGS[method])
        fp = ours_train(model, data, steps, batch, maxlen, ["--method", method, "--dtype", "float32"] + METHOD_FLAGS[method])
        cell = lambda r, m: f"{r:6.1f} tok/s {gb(m):>9}"
        print(f"  {method:<10} {cell(peer_rate, peer_rss):>22} {cell(*bf):>22} {cell(*fp):>22}   "
              f"bf16 {bf[0] / peer_rate:.2f}x / {bf[1] / peer_rss:.2f}x, fp32 {fp[0] / peer_rate:.2f}x / {fp[1] / peer_rss:.2f}x",
              flush=True)


def bench_full(model, data, steps, batch, maxlen, big_model):
    """Full fine-tuning: transformers (fp32 AdamW, its fastest) against ours (AdamW; Adafactor as the memory
    saver), then the peak memory of ours on the 1.8B shape with Adafactor and gradient checkpointing."""
    print(f"\nFull fine-tuning, batch {batch}, max length {maxlen}, {steps} timed steps ({os.path.basename(model)})")
    out, peer_rss = measured([PEER_PYTHON, PEER, "train", model, data, str(steps), str(batch), str(maxlen), "float32", "0",
                              "full"])
    peer_rate = json.loads(out)["tokens_per_second"]
    row("transformers fp32 AdamW", peer_rate, peer_rss)
    for name, flags in [("AdamW", []), ("Adafactor", ["--optim", "adafactor"]),
                        ("Adafactor + checkpointing", ["--optim", "adafactor", "--gradient-checkpointing"])]:
        rate, rss = ours_train(model, data, steps, batch, maxlen, ["--method", "full", "--lr", "1e-5"] + flags)
        row(f"peft (ours) {name}", rate, rss, (peer_rate, peer_rss))
    if big_model:
        rate, rss = ours_train(big_model, data, 2, 1, 256, ["--method", "full", "--lr", "1e-5", "--optim", "adafactor",
                                                            "--gradient-checkpointing"])
        row(f"peft (ours) {os.path.basename(big_model)} Adafactor + ckpt, batch 1", rate, rss)


def bench_qlora(model, data, steps, batch, maxlen, big_model):
    """LoRA on a quantized base (QLoRA) against LoRA on the bf16 base, same run; then the 1.8B shape's peak memory."""
    print(f"\nQLoRA: LoRA r=8 on q_proj,v_proj, batch {batch}, max length {maxlen}, {steps} timed steps")
    lora = METHOD_FLAGS["lora"]
    base = ours_train(model, data, steps, batch, maxlen, ["--dtype", "bfloat16"] + lora)
    row("bf16 base", *base)
    for q in ["q8_0", "q4_0", "q4_k"]:
        row(f"{q} base", *ours_train(model, data, steps, batch, maxlen, ["--quantize", q] + lora), base)
    if big_model:
        print(f" {os.path.basename(big_model)}, gradient checkpointing:")
        big = ours_train(big_model, data, 2, batch, maxlen, ["--gradient-checkpointing"] + lora)
        row("bf16 base", *big)
        row("q4_k base", *ours_train(big_model, data, 2, batch, maxlen, ["--quantize", "q4_k", "--gradient-checkpointing"] + lora), big)


def bench_mpi(model, data, steps, batch, maxlen):
    """Data-parallel LoRA: one process with one thread against `mpirun -np 2` with one thread per rank, the same
    global batch; tokens/s and the share of the run spent summing gradients (allreduce_seconds in the log)."""
    print(f"\nData-parallel LoRA r=8 on q_proj,v_proj, global batch {batch}, max length {maxlen}, {steps} timed steps, "
          f"one thread per process")
    env = dict(os.environ, PEFT_NUM_THREADS="1", OMP_NUM_THREADS="1", OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    results = {}
    for ranks in [1, 2]:
        with tempfile.TemporaryDirectory() as out_dir:
            cmd = [PEFT, "train", "--model", model, "--data", data, "--output", out_dir, "--max-steps", str(steps + 1),
                   "--batch-size", str(batch // ranks), "--max-length", str(maxlen)] + METHOD_FLAGS["lora"]
            if ranks > 1:
                cmd = ["mpirun", "-np", str(ranks), "--oversubscribe", "--bind-to", "core"] + cmd
            _, rss = measured(cmd, env=env)
            log = [json.loads(l) for l in open(os.path.join(out_dir, "train_log.jsonl")) if '"train"' in l]
            span = log[-1]["elapsed_seconds"] - log[0]["elapsed_seconds"]
            rate = (log[-1]["tokens"] - log[0]["tokens"]) / span
            reduce = (log[-1].get("allreduce_seconds", 0) - log[0].get("allreduce_seconds", 0)) / span
            wait = (log[-1].get("rank_wait_seconds", 0) - log[0].get("rank_wait_seconds", 0)) / span
            results[ranks] = rate
            row(f"{ranks} rank{'s' if ranks > 1 else ''}", rate, rss, (results[1], rss) if ranks > 1 else None)
            if ranks > 1:
                print(f"    allreduce {100 * reduce:.2f}% of step time; rank 0 waiting for the other {100 * wait:.2f}%")


def cpu_line(model):
    """The CPU tier, features and GEMM back end as `peft info` reports them."""
    out = subprocess.run([PEFT, "info", "--model", model, "--json"], capture_output=True, text=True, check=True).stdout
    cpu = json.loads(out)["cpu"]
    return f"CPU tier {cpu['tier']} (best here: {cpu['best_tier']}; {cpu['features']}), {cpu['gemm']} GEMM, {cpu['cores']} cores"


def build_c(name, sources, extra=()):
    """Compiles scripts/bench/NAME.c (with `sources` of the kernels) into a temporary executable."""
    exe = os.path.join(tempfile.mkdtemp(), name)
    srcs = [os.path.join(ROOT, "Sources", "CKernels", f) for f in sources]
    # clang, as SwiftPM compiles the kernels into peft (gcc's code for the same source differs in speed).
    cc = os.environ.get("CC") or shutil.which("clang") or "cc"
    subprocess.run([cc, "-O3", "-std=gnu11", "-fno-math-errno", "-I",
                    os.path.join(ROOT, "Sources", "CKernels", "include"), "-I", os.path.join(ROOT, "Sources", "CKernels"),
                    os.path.join(ROOT, "scripts", "bench", name + ".c")] + srcs + ["-ldl", "-lm", "-lpthread", "-o", exe]
                   + list(extra), check=True)
    return exe


def read_bandwidth(threads):
    """This machine's memory read bandwidth in GB/s (scripts/bench/bandwidth.c: a 1 GiB buffer summed)."""
    out = subprocess.run([build_c("bandwidth", []), str(threads)], capture_output=True, text=True, check=True).stdout
    return json.loads(out)["read_gb_per_second"]


def bench_gemm(threads):
    """GFLOP/s of the built-in GEMM and of oneDNN's f32 matmul on the training shapes (scripts/bench/gemm_bench.c,
    compiled here with the kernels' sources)."""
    exe = build_c("gemm_bench", ["dispatch.c", "dnnl_loader.c", "sgemm.c", "vector.c", "convert.c", "pool.c"])
    r = json.loads(subprocess.run([exe, str(threads)], capture_output=True, text=True, check=True).stdout)
    print(f"\nf32 GEMM, {threads} threads, tier {r['tier']}, oneDNN {r['onednn'] or 'not installed'} (GFLOP/s, best of 5)")
    for sh in r["shapes"]:
        ratio = f"  {sh['builtin_gflops'] / sh['onednn_gflops']:.2f}x oneDNN" if sh["onednn_gflops"] else ""
        op = "x W^T" if sh["trans_b"] else "dy W "
        print(f"  {sh['m']:>5} x {sh['n']:>5} x {sh['k']:>5} ({op})  built-in {sh['builtin_gflops']:6.1f}"
              f"  oneDNN {sh['onednn_gflops']:6.1f}{ratio}")


def bench_demo():
    """Wall time of `peft demo` with oneDNN and with the built-in GEMM."""
    import time
    print("\npeft demo (train 600 steps + before/after answers), wall time")
    for name, env in [("oneDNN", {}), ("built-in GEMM", {"PEFT_GEMM": "builtin"})]:
        with tempfile.TemporaryDirectory() as out_dir:
            t0 = time.perf_counter()
            _, rss = measured([PEFT, "demo", "--output", out_dir], env={**os.environ, **env})
            dt = time.perf_counter() - t0
        print(f"  {name:<14} {int(dt) // 60}:{int(dt) % 60:02d}  {gb(rss):>9}")


def bench_gguf(model, new_tokens, llama_python, types, keep=None):
    """Greedy decode from GGUF files that `peft quantize` writes: ours against llama.cpp (llama-cpp-python, built
    from source) on the same file, the same prompt ids and the same thread count; ours in bf16 as the baseline."""
    threads = os.cpu_count()
    prompt = subprocess.run([PEFT, "tokenize", "--model", model, "--text", PROMPT], capture_output=True, text=True,
                            check=True).stdout.split()
    ids = ",".join(t.strip("[],") for t in prompt if t.strip("[],").isdigit())
    print(f"\nGGUF greedy decode, {new_tokens} new tokens, {threads} threads ({model})")
    out, rss = measured([PEFT, "generate", "--model", model, "--prompt", PROMPT, "--max-new-tokens", str(new_tokens),
                         "--temperature", "0", "--json", "--dtype", "bfloat16"])
    base = json.loads(out)["decode_tokens_per_second"]
    row("peft (ours) bf16 safetensors", base, rss)
    with tempfile.TemporaryDirectory() as tmp:
        for kind in types:
            # --keep-gguf: files kept there and reused by later runs (delete them when the model or the writer changes).
            path = os.path.join(keep or tmp, f"{os.path.basename(os.path.normpath(model))}-{kind}.gguf")
            if not (keep and os.path.exists(path)):
                subprocess.run([PEFT, "quantize", "--model", model, "--type", kind, "--output", path], check=True,
                               capture_output=True)
            out, peer_rss = measured([llama_python, os.path.join(ROOT, "scripts", "bench", "llamacpp_peer.py"), path, ids,
                                      str(new_tokens), str(threads)])
            peer = json.loads(out)["decode_tokens_per_second"]
            row(f"llama.cpp {kind}", peer, peer_rss)
            out, ours_rss = measured([PEFT, "generate", "--model", path, "--prompt", PROMPT, "--max-new-tokens",
                                      str(new_tokens), "--temperature", "0", "--json"])
            ours = json.loads(out)["decode_tokens_per_second"]
            row(f"peft (ours) {kind}", ours, ours_rss, (peer, peer_rss))
            print(f"    {kind}: {ours / base:.2f}x our bf16")


QDOT_TYPES = "q4_0,q4_1,q5_0,q5_1,q8_0,q2_k,q3_k,q4_k,q5_k,q6_k,iq4_nl,iq4_xs"


def bench_qdot(llama_python, types):
    """Single-thread quantized matrix-vector products, ours against llama.cpp's vec_dot (libggml-cpu from the
    llama-cpp-python install of --llama-python), on the same weights (scripts/bench/qdot_bench.c)."""
    libdir = subprocess.run([llama_python, "-c", "import llama_cpp, os; print(os.path.join(os.path.dirname("
                             "llama_cpp.__file__), 'lib'))"], capture_output=True, text=True, check=True).stdout.strip()
    exe = build_c("qdot_bench", [f for f in sorted(os.listdir(os.path.join(ROOT, "Sources", "CKernels")))
                                 if f.endswith(".c") and f not in ("dnnl_loader.c", "mpi_loader.c")])
    out = subprocess.run([exe, os.path.join(libdir, "libggml-cpu.so"), os.path.join(libdir, "libggml-base.so")] + types,
                         capture_output=True, text=True, check=True).stdout
    result = json.loads(out)
    print(f"\nQuantized matrix x vector, 1 thread, tier {result['tier']} (time per product incl. quantizing the input)")
    print(f"  {'type':8} {'rows x k':>12} {'ours us':>9} {'llama.cpp us':>13} {'ours vs llama.cpp':>18}")
    for r in result["results"]:
        print(f"  {r['type']:8} {str(r['rows']) + ' x ' + str(r['k']):>12} {r['ours_us']:9.1f} {r['llamacpp_us']:13.1f}"
              f" {r['ratio']:17.2f}x")


def bench_serve(model, new_tokens, clients):
    """`peft serve` under 1, 4, 8, 16 concurrent streaming chat clients (stdlib HTTP only). Aggregate decode rate:
    tokens streamed while every client of the round is decoding, over that window; single-request decode and time to
    first token per round (p50, p99)."""
    import http.client
    import re
    import statistics
    import threading
    import time

    def generate_once():
        out, _ = measured([PEFT, "generate", "--model", model, "--prompt", PROMPT, "--max-new-tokens", str(new_tokens),
                           "--temperature", "0", "--json", "--dtype", "bfloat16"])
        return json.loads(out)["decode_tokens_per_second"]

    server = subprocess.Popen([PEFT, "serve", "--model", model, "--port", "0", "--max-batch", str(max(clients)),
                               "--max-queue", "256", "--dtype", "bfloat16"], stderr=subprocess.PIPE, text=True)
    port = None
    for line in server.stderr:
        m = re.search(r"http://127\.0\.0\.1:(\d+)/v1", line)
        if m:
            port = int(m.group(1))
            break
    if port is None:
        sys.exit("peft serve did not start")
    threading.Thread(target=lambda: [None for _ in server.stderr], daemon=True).start()

    def one(i, results):
        body = json.dumps({"model": model, "messages": [{"role": "user", "content": f"{PROMPT} ({i})"}],
                           "max_tokens": new_tokens, "temperature": 0, "ignore_eos": True, "stream": True})
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        start = time.perf_counter()
        conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
        response = conn.getresponse()
        stamps = []
        for raw in response:
            line = raw.decode().strip()
            if line.startswith("data: ") and '"content":"' in line and '"role"' not in line:
                stamps.append(time.perf_counter())
        conn.close()
        results[i] = (start, stamps)

    def round_of(n):
        results = [None] * n
        threads = [threading.Thread(target=one, args=(i, results)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return results

    print(f"\npeft serve, streaming chat, {new_tokens} tokens per request ({model}, bf16)")
    round_of(1)   # warm-up
    # One request through the server against `peft generate`, 4 times each in the order ABBA BAAB... (medians): one
    # request's rate moves by a quarter between runs on these shared machines, and drifts within a run.
    rate_of = lambda r: (len(r[0][1]) - 1) / (r[0][1][-1] - r[0][1][0])
    generated, served = [], []
    for i in range(4):
        for side in ((0, 1) if i % 2 == 0 else (1, 0)):
            if side == 0:
                generated.append(generate_once())
            else:
                served.append(rate_of(round_of(1)))
    generate_rate, served_rate = statistics.median(generated), statistics.median(served)
    print(f"  one request, 4 runs each alternating (medians): peft generate {generate_rate:.1f} tokens/s, through the "
          f"server {served_rate:.1f} tokens/s ({served_rate / generate_rate:.3f}x)")
    single = None
    for n in clients:
        results = round_of(n)
        ttft = sorted(s[0] - start for start, s in results)
        begin, end = max(s[0] for _, s in results), min(s[-1] for _, s in results)
        inside = sum(1 for _, s in results for t in s if begin < t <= end)
        rate = inside / (end - begin) if end > begin else float("nan")
        if n == 1:
            single = rate = served_rate
        p99 = ttft[min(len(ttft) - 1, int(round(0.99 * (len(ttft) - 1))))]
        extra = f"  {rate / single:.2f}x one request" if n > 1 else "  (the median above)"
        print(f"  {n:2d} client{'s' if n > 1 else ' '}  TTFT p50 {statistics.median(ttft) * 1000:7.0f} ms  p99 {p99 * 1000:7.0f} ms"
              f"  aggregate decode {rate:8.1f} tokens/s{extra}")
    server.terminate()
    server.wait(timeout=120)
    print(f"  server exit status after SIGTERM: {server.returncode}")


def bench_prune(model, data, nsamples, seqlen, methods):
    """`peft prune` on the checkpoint: wall time and peak memory of each method (calibration, pruning, writing)."""
    import time
    print(f"\nPruning, {nsamples} calibration samples of up to {seqlen} tokens ({os.path.basename(model)})")
    for method in methods:
        flags = ["--remove-layers", "4"] if method == "layers" else (["--pattern", "2:4"] if method.endswith(":2:4") else [])
        name = method.split(":")[0]
        with tempfile.TemporaryDirectory() as out_dir:
            t0 = time.perf_counter()
            out, rss = measured([PEFT, "prune", "--model", model, "--data", data, "--output", os.path.join(out_dir, "m"),
                                 "--method", name, "--nsamples", str(nsamples), "--seqlen", str(seqlen), "--json"] + flags)
            seconds = time.perf_counter() - t0
            r = json.loads(out)
        detail = f"{r.get('overall_sparsity', 0) * 100:.0f}% zeros" if name != "layers" else f"layers {r['layers']['removed']} removed"
        print(f"  peft prune --method {method:<14} {seconds:8.1f} s  {gb(rss):>9}  loss {r['loss_before']:.3f} -> "
              f"{r['loss_after']:.3f}, {detail}")


def bench_distill(model, teacher, data, steps, batch, maxlen):
    """`peft distill` (LoRA r=8 on q_proj,v_proj, off-policy) against the same step in torch + PEFT + TRL's GKD loss."""
    print(f"\nDistillation, LoRA r=8 student {os.path.basename(model)}, teacher {os.path.basename(teacher)}, batch {batch}, "
          f"max length {maxlen}, {steps} timed steps, float32")
    out, rss = measured([PEER_PYTHON, PEER, "distill", model, teacher, data, str(steps), str(batch), str(maxlen), "0.5", "1.0"])
    peer = (json.loads(out)["tokens_per_second"], rss)
    row("transformers+peft+trl generalized_jsd_loss", *peer)
    with tempfile.TemporaryDirectory() as out_dir:
        _, rss = measured([PEFT, "distill", "--teacher", teacher, "--model", model, "--data", data, "--output", out_dir,
                           "--max-steps", str(steps + 1), "--batch-size", str(batch), "--max-length", str(maxlen),
                           "--lora-r", "8", "--target-modules", "q_proj,v_proj", "--dtype", "float32"])
        log = [json.loads(l) for l in open(os.path.join(out_dir, "train_log.jsonl")) if '"train"' in l]
        rate = (log[-1]["tokens"] - log[0]["tokens"]) / (log[-1]["elapsed_seconds"] - log[0]["elapsed_seconds"])
    row("peft distill (ours)", rate, rss, peer)


def bench_benchmark(model, questions, subjects=10):
    """`peft eval --benchmark mmlu` on a written MMLU-layout set of `questions` questions (5-shot, English, question
    and options of typical MMLU length): wall time and questions per second."""
    import csv
    import random
    import time
    rnd = random.Random(0)
    words = "the of a an system value theory model process function energy state law force rate group set".split()

    def sentence(n):
        return " ".join(rnd.choice(words) for _ in range(n)).capitalize()

    with tempfile.TemporaryDirectory() as d:
        per = max(1, questions // subjects)
        for split, count in [("dev", 5), ("test", per)]:
            os.makedirs(os.path.join(d, "data", split))
            for s in range(subjects):
                with open(os.path.join(d, "data", split, f"subject_{s}_{split}.csv"), "w", newline="") as f:
                    w = csv.writer(f)
                    for _ in range(count):
                        w.writerow([sentence(45) + "?"] + [sentence(8) for _ in range(4)] + [rnd.choice("ABCD")])
        print(f"\nBenchmark scoring: {subjects * per} MMLU-layout questions in {subjects} subjects, 5-shot, argmax "
              f"({os.path.basename(model)})")
        t0 = time.perf_counter()
        out, rss = measured([PEFT, "eval", "--model", model, "--benchmark", "mmlu", "--benchmark-dir", d, "--json"])
        seconds = time.perf_counter() - t0
        r = json.loads(out)
        print(f"  peft eval --benchmark mmlu  {seconds:8.1f} s ({r['questions'] / seconds:.2f} questions/s)  {gb(rss):>9}")


def bench_dpo(model, data, steps, batch, maxlen):
    """`peft train --stage dpo` (LoRA r=8 on q_proj,v_proj, float32) against the same step in torch + PEFT with TRL's
    sigmoid loss; pairs made from --data: each record's answer chosen, the next record's rejected."""
    print(f"\nDPO, LoRA r=8, {batch} pairs per step, max length {maxlen}, {steps} timed steps, float32 ({os.path.basename(model)})")
    out, rss = measured([PEER_PYTHON, PEER, "dpo", model, data, str(steps), str(batch), str(maxlen), "0.1"])
    peer = (json.loads(out)["tokens_per_second"], rss)
    row("transformers+peft, TRL's DPO step", *peer)
    records = [json.loads(l) for l in open(data, encoding="utf-8") if l.strip()]
    with tempfile.TemporaryDirectory() as d:
        pairs = os.path.join(d, "pairs.jsonl")
        with open(pairs, "w", encoding="utf-8") as f:
            for i, r in enumerate(records):
                f.write(json.dumps({"instruction": r["instruction"], "input": r.get("input", ""), "chosen": r["output"],
                                    "rejected": records[(i + 1) % len(records)]["output"]}, ensure_ascii=False) + "\n")
        out_dir = os.path.join(d, "out")
        _, rss = measured([PEFT, "train", "--stage", "dpo", "--model", model, "--data", pairs, "--output", out_dir,
                           "--max-steps", str(steps + 1), "--batch-size", str(batch), "--max-length", str(maxlen),
                           "--lora-r", "8", "--target-modules", "q_proj,v_proj", "--dtype", "float32"])
        log = [json.loads(l) for l in open(os.path.join(out_dir, "train_log.jsonl")) if '"train"' in l]
        rate = (log[-1]["tokens"] - log[0]["tokens"]) / (log[-1]["elapsed_seconds"] - log[0]["elapsed_seconds"])
    row("peft train --stage dpo (ours)", rate, rss, peer)


def bench_baseline(baseline, model, data, steps, batch, maxlen, new_tokens, gguf_types):
    """Ours against another build of peft (e.g. an older commit's release build) on the same runs, alternating the
    two builds twice and keeping each one's best: LoRA training fp32 and bf16, greedy decode bf16 and f32, and the
    GGUF files (quantized once by ours) that both load."""
    builds = [("ours", PEFT), ("baseline", baseline)]
    print(f"\nThis build against {baseline} (best of 2 alternating runs each; ratio = ours / baseline)")

    def train_rate(binary, flags):
        with tempfile.TemporaryDirectory() as out_dir:
            measured([binary, "train", "--model", model, "--data", data, "--output", out_dir, "--max-steps",
                      str(steps + 1), "--batch-size", str(batch), "--max-length", str(maxlen), "--lora-r", "8",
                      "--target-modules", "q_proj,v_proj"] + flags)
            log = [json.loads(l) for l in open(os.path.join(out_dir, "train_log.jsonl")) if '"train"' in l]
            return (log[-1]["tokens"] - log[0]["tokens"]) / (log[-1]["elapsed_seconds"] - log[0]["elapsed_seconds"])

    def decode(binary, path, flags, key):
        out, _ = measured([binary, "generate", "--model", path, "--prompt", PROMPT, "--max-new-tokens",
                           str(new_tokens), "--temperature", "0", "--json"] + flags)
        return json.loads(out)[key]

    cases = []
    for dtype in ["float32", "bfloat16"]:
        cases.append((f"LoRA training {dtype} (tokens/s)", lambda b, d=dtype: train_rate(b, ["--dtype", d])))
    for dtype in ["bfloat16", "float32"]:
        for phase in ["prefill", "decode"]:
            cases.append((f"greedy {phase} {dtype} (tokens/s)",
                          lambda b, d=dtype, p=phase: decode(b, model, ["--dtype", d], f"{p}_tokens_per_second")))
    with tempfile.TemporaryDirectory() as gguf_dir:
        for kind in gguf_types:
            path = os.path.join(gguf_dir, f"model-{kind}.gguf")
            subprocess.run([PEFT, "quantize", "--model", model, "--type", kind, "--output", path], check=True,
                           capture_output=True)
            cases.append((f"greedy decode GGUF {kind} (tokens/s)",
                          lambda b, p=path: decode(b, p, [], "decode_tokens_per_second")))
        for name, run in cases:
            best = {}
            for _ in range(2):
                for label, binary in builds:
                    best[label] = max(best.get(label, 0.0), run(binary))
            print(f"  {name:<40} ours {best['ours']:8.1f}  baseline {best['baseline']:8.1f}  "
                  f"{best['ours'] / best['baseline']:.2f}x")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", nargs="?", default="all",
                    choices=["generate", "train", "methods", "full", "gguf", "qdot", "qlora", "mpi", "serve", "gemm", "demo",
                             "prune", "distill", "benchmark", "dpo", "baseline", "all"])
    ap.add_argument("--questions", type=int, default=1000, help="for `benchmark`: questions scored")
    ap.add_argument("--teacher", help="for `distill`: the teacher (default: the --model checkpoint itself)")
    ap.add_argument("--prune-methods", default="magnitude,wanda,wanda:2:4,sparsegpt,layers",
                    help="comma list for `prune` (METHOD or METHOD:2:4)")
    ap.add_argument("--nsamples", type=int, default=16, help="for `prune`: calibration samples")
    ap.add_argument("--seqlen", type=int, default=512, help="for `prune`: longest calibration sample")
    ap.add_argument("--llama-python", default="/opt/llama/bin/python",
                    help="for `gguf`: a Python with llama-cpp-python (the peer)")
    ap.add_argument("--big-model", help="for `full` and `qlora`: also measure ours on this (e.g. the Qwen1.5-1.8B shape)")
    ap.add_argument("--methods", default=",".join(METHOD_FLAGS), help="comma list for `methods`")
    ap.add_argument("--gguf-types", default="q8_0,q4_0",
                    help="comma list of `peft quantize --type` file types for `gguf` (e.g. q4_k_m,q5_k_m,q6_k,q3_k_m,"
                         "q2_k,iq4_xs,q4_1,iq4_nl,q5_1: use --model bench-out/qwen2.5-1.5b-random, whose matrices are "
                         "whole k-quant super-blocks)")
    ap.add_argument("--keep-gguf", metavar="DIR", help="for `gguf`: keep the quantized files in DIR and reuse them")
    ap.add_argument("--qdot-types", default=QDOT_TYPES, help="comma list of GGML block types for `qdot`")
    ap.add_argument("--model", default=os.path.join(ROOT, "bench-out", "qwen2.5-0.5b-random"))
    ap.add_argument("--data", default=os.path.join(ROOT, "Data", "demo", "train.jsonl"))
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--baseline", metavar="PEFT",
                    help="for `baseline`: another build of peft to measure against (e.g. an older commit's release build)")
    ap.add_argument("--target-parameters", default="",
                    help="for `train`: also LoRA on a mixture's stacked experts (PEFT's target_parameters), e.g. "
                         "mlp.experts.gate_up_proj,mlp.experts.down_proj; both tools then train without dropout")
    ap.add_argument("--targets", default="q_proj,v_proj",
                    help="for `train`: the LoRA target modules of both tools (e.g. qkv_proj for Phi-3)")
    ap.add_argument("--peer-python", default=sys.executable,
                    help="the Python that runs the peer (remote-code families: one with the transformers their code "
                         "was written for; see scripts/make_bench_model.py)")
    ap.add_argument("--no-peer-bf16", action="store_true",
                    help="for `train`: skip the peer's bf16 run (over 15 minutes for 5 steps on an AVX2 CPU)")
    args = ap.parse_args()
    global PEER_PYTHON
    PEER_PYTHON = args.peer_python
    if not os.path.exists(PEFT):
        sys.exit("build first: swift build -c release")
    if not os.path.exists(os.path.join(args.model, "config.json")):
        subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "make_bench_model.py"), "--out", args.model],
                       check=True)
    print(f"machine: {os.cpu_count()} cores; {cpu_line(args.model)}")
    if args.what in ("gemm", "all"):
        bench_gemm(os.cpu_count())
    if args.what == "demo":
        bench_demo()
    if args.what in ("generate", "all"):
        bench_generate(args.model, args.new_tokens)
    if args.what in ("train", "all"):
        bench_train(args.model, args.data, args.steps, args.batch, args.max_length, not args.no_peer_bf16, args.targets,
                    args.target_parameters)
    if args.what in ("full", "all"):
        bench_full(args.model, args.data, args.steps, args.batch, args.max_length, args.big_model)
    if args.what == "mpi":
        bench_mpi(args.model, args.data, args.steps, args.batch, args.max_length)
    if args.what == "qlora":
        bench_qlora(args.model, args.data, args.steps, args.batch, args.max_length, args.big_model)
    if args.what == "serve":
        bench_serve(args.model, max(args.new_tokens, 128), [1, 4, 8, 16])
    if args.what == "qdot":
        bench_qdot(args.llama_python, args.qdot_types.split(","))
    if args.what == "gguf":
        bench_gguf(args.model, args.new_tokens, args.llama_python, args.gguf_types.split(","), args.keep_gguf)
    if args.what == "prune":
        bench_prune(args.model, args.data, args.nsamples, args.seqlen, args.prune_methods.split(","))
    if args.what == "baseline":
        if not args.baseline:
            sys.exit("baseline: name the other build with --baseline PATH")
        bench_baseline(args.baseline, args.model, args.data, args.steps, args.batch, args.max_length, args.new_tokens,
                       args.gguf_types.split(","))
    if args.what == "dpo":
        bench_dpo(args.model, args.data, args.steps, args.batch, args.max_length)
    if args.what == "benchmark":
        bench_benchmark(args.model, args.questions)
    if args.what == "distill":
        bench_distill(args.model, args.teacher or args.model, args.data, args.steps, args.batch, args.max_length)
    if args.what in ("methods", "all"):
        bench_methods(args.model, args.data, args.steps, args.batch, args.max_length, args.methods.split(","))


if __name__ == "__main__":
    main()
