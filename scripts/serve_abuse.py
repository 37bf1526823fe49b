#!/usr/bin/env python3
"""`peft serve` under abuse, on loopback, bounded in time (standard library only; no model download).

    python3 scripts/serve_abuse.py [--peft .build/debug/peft] [--model Tests/Fixtures/models/tiny-qwen2]

Starts the server on a free port with a 2 s idle timeout, then at once: 200 idle connections, 50 clients sending their
headers one byte per 100 ms, 40 clients that vanish mid-stream, bodies that claim 10 GB, invalid UTF-8, JSON that
nests 100,000 levels, and 2,000 mixed good and bad requests from 16 threads. Afterwards: /health answers within
1 s, every good request got the greedy answer the server gives when alone, every bad one a 4xx JSON error, idle and
slow connections were closed by the server, the resident memory grew by less than 200 MB, the open file
descriptors are back to where they were (within 8), and SIGTERM drains and exits 0. Prints one line per check and
exits non-zero when one fails.
"""
import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def raw(port, data, read=True, timeout=30):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(data)
    if not read:
        return s
    out = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
            if b"\r\n\r\n" in out:
                head, _, body = out.partition(b"\r\n\r\n")
                length = [int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")]
                if length and len(body) >= length[0]:
                    break
                if b"transfer-encoding: chunked" in head.lower() and body.endswith(b"0\r\n\r\n"):
                    break
    except socket.timeout:
        pass
    s.close()
    return out


def post(port, path, body, extra=b""):
    if isinstance(body, str):
        body = body.encode()
    return raw(port, b"POST " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + extra
               + b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)


def status(response):
    try:
        return int(response.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return 0


def answer(response):
    body = response.partition(b"\r\n\r\n")[2]
    try:
        return json.loads(body)["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError):
        return None


def proc_status(pid):
    rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--peft", default=os.path.join(ROOT, ".build", "debug", "peft"))
    ap.add_argument("--model", default=os.path.join(ROOT, "Tests", "Fixtures", "models", "tiny-qwen2"))
    args = ap.parse_args()
    server = subprocess.Popen([args.peft, "serve", "--model", args.model, "--port", "0", "--idle-timeout", "2",
                               "--max-batch", "8"], stderr=subprocess.PIPE, text=True)
    port = None
    for line in server.stderr:
        if "listening on http://" in line:
            port = int(line.split("http://127.0.0.1:")[1].split("/")[0])
            break
    if port is None:
        print("the server did not start")
        return 1
    threading.Thread(target=lambda: [None for _ in server.stderr], daemon=True).start()
    failures = []

    def check(ok, what):
        print(("ok    " if ok else "FAIL  ") + what)
        if not ok:
            failures.append(what)

    good = json.dumps({"model": args.model, "messages": [{"role": "user", "content": "hello"}], "max_tokens": 4,
                       "temperature": 0})
    expected = answer(post(port, "/v1/chat/completions", good))
    check(expected is not None, f"a lone request is answered ({expected!r})")
    time.sleep(0.5)
    rss0, fds0 = proc_status(server.pid)

    # 200 idle connections and 50 slow-header clients, held open while everything else runs.
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(200)]
    slow_closed = []

    def slow_client():
        s = socket.create_connection(("127.0.0.1", port))
        try:
            for b in b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200:
                s.send(bytes([b]))
                time.sleep(0.1)
            slow_closed.append(False)
        except OSError:
            slow_closed.append(True)
        finally:
            s.close()

    slow = [threading.Thread(target=slow_client) for _ in range(50)]
    for t in slow:
        t.start()

    # Clients that vanish mid-stream.
    def vanish():
        body = json.dumps({"model": args.model, "messages": [{"role": "user", "content": "tell me"}], "max_tokens": 64,
                           "stream": True}).encode()
        s = raw(port, b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: " + str(len(body)).encode()
                + b"\r\n\r\n" + body, read=False)
        s.recv(200)
        s.close()

    vanishers = [threading.Thread(target=vanish) for _ in range(40)]
    for t in vanishers:
        t.start()

    # 2,000 mixed requests from 16 threads.
    bad_bodies = [b"{", b"[1,2]", b"\xff\xfe\x00garbage", b'{"model": 5}', ("[" * 100000).encode(),
                  json.dumps({"model": args.model, "messages": []}).encode(),
                  json.dumps({"model": args.model, "messages": [{"role": "user", "content": "x"}], "max_tokens": -1}).encode(),
                  json.dumps({"model": "nope", "messages": [{"role": "user", "content": "x"}]}).encode(),
                  b'{"model": "' + b"\xc3\x28" * 10 + b'", "messages": []}']
    results = []
    lock = threading.Lock()

    def worker(seed):
        rng = random.Random(seed)
        for i in range(125):
            if rng.random() < 0.4:
                r = post(port, "/v1/chat/completions", good)
                with lock:
                    results.append(("good", status(r), answer(r)))
            elif rng.random() < 0.1:
                # A body that claims 10 GB: refused by its length, not read.
                r = raw(port, b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000000\r\n\r\n{", timeout=10)
                with lock:
                    results.append(("huge", status(r), None))
            else:
                r = post(port, "/v1/chat/completions", rng.choice(bad_bodies))
                with lock:
                    results.append(("bad", status(r), None))

    start = time.time()
    workers = [threading.Thread(target=worker, args=(k,)) for k in range(16)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    print(f"      {len(results)} requests in {time.time() - start:.1f} s")
    goods = [r for r in results if r[0] == "good"]
    check(all(s == 200 and a == expected for _, s, a in goods), f"all {len(goods)} good requests got the lone answer")
    bads = [r for r in results if r[0] == "bad"]
    check(all(400 <= s < 500 for _, s, _ in bads), f"all {len(bads)} bad requests got a 4xx ({sorted(set(s for _, s, _ in bads))})")
    huge = [r for r in results if r[0] == "huge"]
    check(all(s == 413 for _, s, _ in huge), f"all {len(huge)} 10 GB bodies were refused with 413 ({sorted(set(s for _, s, _ in huge))})")
    for t in slow + vanishers:
        t.join()
    check(all(slow_closed) and len(slow_closed) == 50, f"the server closed {sum(slow_closed)} of 50 slow-header clients")
    closed = 0
    for s in idle:
        s.settimeout(5)
        try:
            closed += s.recv(1) == b""
        except OSError:
            closed += 1
        s.close()
    check(closed == 200, f"the server closed {closed} of 200 idle connections")
    t0 = time.time()
    h = raw(port, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", timeout=5)
    check(status(h) == 200 and time.time() - t0 < 1, f"/health answers at once ({time.time() - t0:.3f} s)")
    time.sleep(3)
    rss1, fds1 = proc_status(server.pid)
    check(rss1 - rss0 < 200 << 20, f"resident memory grew by {(rss1 - rss0) / 2**20:.1f} MB")
    check(fds1 <= fds0 + 8, f"open file descriptors {fds0} before, {fds1} after")
    server.send_signal(signal.SIGTERM)
    try:
        rc = server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        rc = None
    check(rc == 0, f"SIGTERM: exit {rc}")
    print("serve abuse:", "FAILED: " + "; ".join(failures) if failures else "passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
