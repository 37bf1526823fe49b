#!/usr/bin/env python3
"""`peft webui` in a real browser: Debian's chromium and chromium-driver driven by Selenium.

Starts `peft webui` on a fresh workdir (the built-in demo model), then from the page: previews the data and the
command, trains LoRA with live curves, reloads mid-run and sees the run go on, stops and resumes it to the end,
chats with the result beside the base model, exports a GGUF, evaluates with a predictions table, runs a comparison
and overlays past runs, switches to Chinese (remembered over a reload), and finds no console error; then, on another
address with --api-key, the page asks for the key, refuses a wrong one and works with the right one.

    python3 -m venv .build/webui-venv && .build/webui-venv/bin/pip install selenium
    .build/webui-venv/bin/python scripts/webui_browser_test.py --peft .build/debug/peft [--screenshots docs]

--screenshots DIR writes webui-train.png, webui-evaluate.png, webui-compare.png, webui-chat.png, webui-export.png
and webui-train-zh.png there (the README shows them).
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait


def log(message):
    print(f"[webui-browser] {message}", flush=True)


class Check:
    def __init__(self, driver, base, shots):
        self.driver, self.base, self.shots = driver, base, shots

    def wait(self, what, condition, timeout=120):
        # A page that reloads under the condition (signing in, a refresh) leaves its elements stale or gone for a
        # moment: ask again rather than fail at once.
        try:
            return WebDriverWait(self.driver, timeout, poll_frequency=0.2,
                                 ignored_exceptions=(NoSuchElementException, StaleElementReferenceException)
                                 ).until(lambda d: condition())
        except Exception:
            self.driver.save_screenshot(os.path.join(tempfile.gettempdir(), "webui-failure.png"))
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")

    def by_id(self, element_id):
        return self.driver.find_element(By.ID, element_id)

    def set(self, element_id, value):
        e = self.by_id(element_id)
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", e)
        e.clear()
        e.send_keys(value)

    def click(self, element_id):
        e = self.by_id(element_id)
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", e)
        e.click()

    def tab(self, name):
        self.driver.find_element(By.CSS_SELECTOR, f'#tabs button[data-tab="{name}"]').click()

    def state(self):
        return self.by_id("job-state").text

    def points(self):
        return int(self.by_id("job-chart").get_attribute("data-points") or 0)

    def api(self, path):
        with urllib.request.urlopen(self.base + path) as r:
            return json.load(r)

    def shot(self, name):
        if self.shots:
            self.driver.execute_script("window.scrollTo(0, 0);")
            time.sleep(0.3)
            self.driver.save_screenshot(os.path.join(self.shots, f"webui-{name}.png"))


def start_server(peft, workdir, extra=()):
    server = subprocess.Popen([peft, "webui", "--port", "0", "--workdir", workdir, *extra], stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        line = server.stderr.readline()
        m = re.search(r"open http://[^:]+:(\d+)/", line)
        if m:
            return server, f"http://127.0.0.1:{m.group(1)}"
        if not line and server.poll() is not None:
            break
    raise AssertionError("peft webui did not start")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--peft", required=True, help="the peft executable")
    ap.add_argument("--screenshots", help="folder for the tab screenshots")
    ap.add_argument("--chromedriver", default="/usr/bin/chromedriver")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    args = ap.parse_args()
    workdir = tempfile.mkdtemp(prefix="peft-webui-browser-")
    server, base = start_server(os.path.abspath(args.peft), workdir)
    if args.screenshots:
        os.makedirs(args.screenshots, exist_ok=True)
    options = webdriver.ChromeOptions()
    options.binary_location = args.chromium
    for flag in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1500,1150", "--lang=en-US"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(args.chromedriver), options=options)
    began = time.time()
    def console():
        entries = driver.get_log("browser")   # the entries since the last call
        for e in entries:
            if e["level"] != "INFO":
                log(f"console {e['level']}: {e['message']}")
        return [e for e in entries if e["level"] == "SEVERE"]
    try:
        run(Check(driver, base, args.screenshots))
        severe = console()
        assert not severe, f"console errors: {severe}"
        log("no console errors")
        keyed(driver, os.path.abspath(args.peft))
        # Only the refusals the key phase asks for: the first call without the key (401) and the wrong key (403).
        unexpected = [e for e in console() if not re.search(r"/api/info - .* 401 |/api/login - .* 403 ", e["message"])]
        assert not unexpected, f"console errors: {unexpected}"
        log(f"all checks passed in {time.time() - began:.0f} s")
    finally:
        driver.quit()
        server.send_signal(signal.SIGTERM)
        try:
            rc = server.wait(timeout=120)
        except subprocess.TimeoutExpired:
            server.kill()
            rc = "killed"
        shutil.rmtree(workdir, ignore_errors=True)
    assert rc == 0, f"peft webui exited with {rc} on SIGTERM"
    log("peft webui stopped cleanly on SIGTERM")


def run(c):
    d = c.driver
    d.get(c.base + "/")
    info = c.api("/api/info")
    demo = info["demo"]
    c.wait("the train form", lambda: c.by_id("train-opt-model").get_attribute("value") == demo["model"])

    # --- Train: preview the data and the command, then start.
    c.set("train-opt-max-steps", "500")
    c.set("train-opt-eval-every", "25")
    c.set("train-opt-save-every", "25")
    Select(c.by_id("train-opt-dtype")).select_by_value("float32")
    c.click("train-preview-data")
    c.wait("the data preview", lambda: "80 records" in c.by_id("preview-summary").text)
    marks = d.find_elements(By.CSS_SELECTOR, "#train-data .segments mark")
    assert marks and marks[0].text.startswith("推荐用药"), "the trained tokens are highlighted"
    c.click("train-preview-cmd")
    c.wait("the command line", lambda: c.by_id("train-cmd").text.startswith("peft train --model " + demo["model"]))
    line = c.by_id("train-cmd").text
    assert "--max-steps 500" in line and "--output " in line, line
    output = c.by_id("train-opt-output").get_attribute("value")
    assert output and output in line, "the output folder chosen for the preview is the one the run will use"
    log("data preview and command preview shown")
    c.click("train-start")
    c.wait("the run to start", lambda: c.state() == "running")
    c.wait("the loss curve to fill in", lambda: c.points() >= 40)
    before = c.points()
    log(f"training; {before} points on the curve")

    # --- Reload mid-run: the job goes on, the curve is replayed and keeps growing.
    d.refresh()
    c.wait("the page after the reload", lambda: c.by_id("job-view").is_displayed() and c.state() == "running", timeout=60)
    c.wait("the replayed curve", lambda: c.points() >= before)
    replayed = c.points()
    c.wait("the curve to grow after the reload", lambda: c.points() > replayed + 10)
    stats = c.by_id("job-stats").text
    assert "tok/s" in stats and "ETA" in stats and "memory" in stats, stats
    log(f"reloaded mid-run: {replayed} points replayed, still growing; stats: {stats}")

    # --- Stop (a checkpoint is saved), then resume to the end.
    c.click("job-stop")
    c.wait("the run to stop", lambda: c.state() == "stopped", timeout=60)
    first_job = c.by_id("job-title").text.split(" ")[0]
    c.click("job-resume")
    c.wait("the resumed run", lambda: c.state() == "running" and c.by_id("job-title").text.split(" ")[0] != first_job)
    c.wait("the resumed run to finish", lambda: c.state() == "succeeded", timeout=300)
    assert c.points() > 500, f"the resumed run's curve holds the whole run: {c.points()} points"
    c.shot("train")
    log("stopped, resumed and finished")

    # --- Chat: the trained adapter beside the base model.
    c.tab("chat")
    c.set("chat-opt-adapter", f"tuned={output}")
    Select(c.by_id("chat-opt-dtype")).select_by_value("float32")
    c.click("chat-start")
    c.wait("the chat server", lambda: any(o.get_attribute("value") == "tuned" for o in d.find_elements(By.CSS_SELECTOR, "#pane-a .pane-model option")), timeout=120)
    Select(d.find_element(By.CSS_SELECTOR, "#pane-a .pane-model")).select_by_value("tuned")
    Select(d.find_element(By.CSS_SELECTOR, "#pane-b .pane-model")).select_by_value(demo["model"])
    question = "使用中医知识正确回答适合这个病例的中成药。\n最近火气特别大，眼睛又红又肿，咽喉肿痛，嘴唇起了疮。"
    c.set("chat-input", question)
    c.click("chat-send-both")
    c.wait("both answers", lambda: len(d.find_elements(By.CSS_SELECTOR, ".pane .msg.assistant.done")) == 2, timeout=120)
    a = d.find_element(By.CSS_SELECTOR, "#pane-a .msg.assistant").text
    b = d.find_element(By.CSS_SELECTOR, "#pane-b .msg.assistant").text
    assert a.startswith("推荐用药："), f"the adapter answers in the trained layout: {a[:80]!r}"
    assert a != b, "the base model answers differently"
    c.shot("chat")
    log(f"chat: adapter {a[:24]!r}..., base {b[:12]!r}...")

    # --- Export: a GGUF of the merged model, with its size.
    c.tab("export")
    c.wait("the adapter filled in", lambda: c.by_id("quantize-opt-adapter").get_attribute("value") == output)
    Select(c.by_id("quantize-opt-type")).select_by_value("q8_0")
    c.click("quantize-start")
    c.wait("the GGUF file", lambda: d.find_elements(By.CSS_SELECTOR, "#export-result .export-size"), timeout=180)
    size = d.find_element(By.CSS_SELECTOR, "#export-result .export-size").text
    assert size.endswith("MB"), size
    c.shot("export")
    log(f"exported a q8_0 GGUF of {size}")

    # --- Evaluate: metrics and the predictions table.
    c.tab("evaluate")
    c.set("eval-opt-adapter", output)
    c.set("eval-opt-limit", "3")
    c.click("eval-start")
    c.wait("the predictions", lambda: len(d.find_elements(By.CSS_SELECTOR, "#eval-predictions tr.prediction")) == 3, timeout=180)
    metrics = c.by_id("eval-metrics").text
    assert "rougeL" in metrics and "loss" in metrics, metrics
    c.shot("evaluate")
    log("evaluation with 3 predictions shown")

    # --- Compare: the report inside the page; past runs overlaid.
    c.tab("compare")
    c.set("compare-opt-methods", "lora,ia3")
    c.set("compare-opt-max-steps", "20")
    c.set("compare-opt-questions", "2")
    c.click("compare-start")
    c.wait("the comparison report", lambda: d.find_elements(By.ID, "compare-report"), timeout=400)
    boxes = d.find_elements(By.CSS_SELECTOR, "#history-list input[type=checkbox]")
    assert len(boxes) >= 2, f"past runs listed: {len(boxes)}"
    for box in boxes[:2]:
        d.execute_script("arguments[0].scrollIntoView({block: 'center'});", box)
        box.click()
    c.wait("the overlaid curves", lambda: int(c.by_id("history-chart").get_attribute("data-points") or 0) > 500)
    d.switch_to.frame(c.by_id("compare-report"))
    report = d.find_element(By.TAG_NAME, "body").text
    d.switch_to.default_content()
    assert "lora" in report.lower() and "ia3" in report.lower(), report[:200]
    c.shot("compare")
    log("comparison report shown, two runs overlaid")

    # --- Chinese, remembered over a reload.
    c.tab("train")
    c.click("lang")
    c.wait("the Chinese words", lambda: d.find_element(By.CSS_SELECTOR, '#tabs button[data-tab="train"]').text == "训练")
    d.refresh()
    c.wait("the Chinese words after a reload", lambda: d.find_element(By.CSS_SELECTOR, '#tabs button[data-tab="train"]').text == "训练", timeout=60)
    c.shot("train-zh")
    c.click("lang")
    c.wait("English again", lambda: d.find_element(By.CSS_SELECTOR, '#tabs button[data-tab="train"]').text == "Train")
    log("language switch remembered")


def keyed(driver, peft):
    """On another address the server needs its key: the page asks for it once, then works (an HttpOnly cookie)."""
    workdir = tempfile.mkdtemp(prefix="peft-webui-key-")
    server, base = start_server(peft, workdir, ["--host", "0.0.0.0", "--api-key", "s3cret"])
    try:
        c = Check(driver, base, None)
        driver.get(base + "/")
        c.wait("the key prompt", lambda: c.by_id("keybox").is_displayed(), timeout=30)
        try:
            urllib.request.urlopen(base + "/api/jobs")
            raise AssertionError("the API answered without the key")
        except urllib.error.HTTPError as e:
            assert e.code == 401, e.code
        c.by_id("key").send_keys("wrong")
        c.click("key-send")
        c.wait("the refusal", lambda: c.by_id("key-error").text != "", timeout=30)
        c.by_id("key").clear()
        c.by_id("key").send_keys("s3cret")
        c.click("key-send")
        c.wait("the page after signing in", lambda: not c.by_id("keybox").is_displayed()
               and c.by_id("train-opt-model").get_attribute("value").endswith("demo/base-model"), timeout=60)
        log("with --api-key: the page asked for the key, refused a wrong one, then worked")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"[webui-browser] FAILED: {e}", file=sys.stderr)
        sys.exit(1)
