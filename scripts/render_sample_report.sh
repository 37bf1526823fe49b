#!/usr/bin/env bash
# Renders the sample before/after report (Tests/EvaluationTests/SampleReport.swift) to HTML, Markdown and JSON,
# then screenshots it (and a partial, before-only report and an empty one) with headless Chromium to look at.
# Usage (from the package root): scripts/render_sample_report.sh [out-dir]   (default /tmp/eval-sample-report)
# Needs: chromium and fonts-noto-cjk (Debian: apt-get install -y chromium fonts-noto-cjk) for the PNG.
set -euo pipefail
out="${1:-/tmp/eval-sample-report}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
EVAL_SAMPLE_REPORT_DIR="$out" swift test --filter SampleReportTests >/dev/null
echo "wrote $out/report.html, $out/report.md, $out/report.json"
if command -v chromium >/dev/null 2>&1; then
    for name in report report-partial report-empty; do
        chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --screenshot="$out/$name.png" \
            --window-size="${WINDOW_SIZE:-1280,2000}" "file://$out/$name.html" 2>/dev/null
        echo "wrote $out/$name.png"
    done
else
    echo "chromium not found: skipped the screenshot" >&2
fi
