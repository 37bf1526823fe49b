/// The web UI's one page: HTML, CSS and JavaScript in the binary, nothing fetched from elsewhere.
enum WebPage {
    static var html: String { skeleton.replacingOccurrences(of: "/*STYLE*/", with: style).replacingOccurrences(of: "/*SCRIPT*/", with: script) }

    static let skeleton = #"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>peft webui</title>
<style>/*STYLE*/</style>
</head>
<body>
<header>
  <h1>peft <small data-i18n="subtitle">fine-tuning on the CPU</small></h1>
  <nav id="tabs">
    <button data-tab="train" class="active" data-i18n="tab.train">Train</button>
    <button data-tab="evaluate" data-i18n="tab.evaluate">Evaluate</button>
    <button data-tab="compare" data-i18n="tab.compare">Compare</button>
    <button data-tab="chat" data-i18n="tab.chat">Chat</button>
    <button data-tab="export" data-i18n="tab.export">Export</button>
  </nav>
  <span id="conn" class="conn"></span>
  <button id="lang" title="English / 中文">中文</button>
</header>
<form id="keybox" class="keybox" hidden>
  <input type="text" name="username" autocomplete="username" value="peft" hidden>
  <label><span data-i18n="key.label">This server needs its key</span> <input id="key" type="password" autocomplete="current-password"></label>
  <button id="key-send" type="submit" data-i18n="key.send">Sign in</button> <span id="key-error" class="error"></span>
</form>
<main>
  <div class="work">
    <section id="tab-train" class="tab">
      <h2 data-i18n="train.title">Train</h2>
      <p class="hint" data-i18n="train.hint">Every option of peft train, defaults shown. Paths are relative to the workdir.</p>
      <div id="train-form" class="form"></div>
      <div class="buttons">
        <button id="train-preview-data" data-i18n="train.previewData">Preview data</button>
        <button id="train-preview-cmd" data-i18n="train.previewCmd">Preview command</button>
        <button id="train-start" class="primary" data-i18n="train.start">Start</button>
      </div>
      <div id="train-error" class="error"></div>
      <pre id="train-cmd" class="cmd" hidden></pre>
      <div id="train-data"></div>
    </section>
    <section id="tab-evaluate" class="tab" hidden>
      <h2 data-i18n="eval.title">Evaluate</h2>
      <p class="hint" data-i18n="eval.hint">Loss and perplexity of a model with or without an adapter; with generate, BLEU-4, ROUGE and exact match of its answers.</p>
      <div id="eval-form" class="form"></div>
      <div class="buttons"><button id="eval-start" class="primary" data-i18n="eval.start">Evaluate</button></div>
      <div id="eval-error" class="error"></div>
      <div id="eval-result"></div>
    </section>
    <section id="tab-compare" class="tab" hidden>
      <h2 data-i18n="compare.title">Compare</h2>
      <p class="hint" data-i18n="compare.hint">Train several methods on the same data and budget, evaluate each on the same questions, one report.</p>
      <div id="compare-form" class="form"></div>
      <div class="buttons"><button id="compare-start" class="primary" data-i18n="compare.start">Run comparison</button></div>
      <div id="compare-error" class="error"></div>
      <div id="compare-result"></div>
      <h3 data-i18n="compare.history">Past runs</h3>
      <p class="hint" data-i18n="compare.historyHint">Every training run in the workdir (from this page, the command line or a comparison); tick some to overlay their loss curves.</p>
      <div id="history-list" class="history"></div>
      <div class="chart-box"><canvas id="history-chart" width="760" height="300"></canvas></div>
    </section>
    <section id="tab-chat" class="tab" hidden>
      <h2 data-i18n="chat.title">Chat</h2>
      <p class="hint" data-i18n="chat.hint">Start a chat server with a model and any adapters (one NAME=DIR per line), then talk to one, or two side by side.</p>
      <div id="chat-form" class="form"></div>
      <div class="buttons"><button id="chat-start" class="primary" data-i18n="chat.start">Start chat server</button></div>
      <div id="chat-error" class="error"></div>
      <div class="row"><label><span data-i18n="chat.server">Server</span> <select id="chat-server"></select></label></div>
      <div class="row chat-settings">
        <label><span data-i18n="chat.system">System prompt</span> <input id="chat-system" size="40"></label>
        <label>temperature <input id="chat-temperature" type="number" step="0.1" min="0" value="0"></label>
        <label>top_p <input id="chat-top-p" type="number" step="0.05" min="0" max="1" value="1"></label>
        <label>max_tokens <input id="chat-max-tokens" type="number" min="1" value="128"></label>
      </div>
      <div class="panes">
        <div class="pane" id="pane-a"><label>A <select class="pane-model"></select></label><div class="messages"></div></div>
        <div class="pane" id="pane-b"><label>B <select class="pane-model"></select></label><div class="messages"></div></div>
      </div>
      <textarea id="chat-input" rows="3" data-i18n-placeholder="chat.placeholder" placeholder="Ask something…"></textarea>
      <div class="buttons">
        <button id="chat-send" class="primary" data-i18n="chat.send">Send to A</button>
        <button id="chat-send-both" data-i18n="chat.sendBoth">Send to A and B</button>
        <button id="chat-stop" data-i18n="chat.stop">Stop</button>
        <button id="chat-clear" data-i18n="chat.clear">Clear</button>
      </div>
    </section>
    <section id="tab-export" class="tab" hidden>
      <h2 data-i18n="export.title">Export</h2>
      <div class="two">
        <div>
          <h3 data-i18n="export.merge">Merge an adapter into the model</h3>
          <div id="merge-form" class="form"></div>
          <div class="buttons"><button id="merge-start" class="primary" data-i18n="export.mergeStart">Merge</button></div>
          <div id="merge-error" class="error"></div>
        </div>
        <div>
          <h3 data-i18n="export.quantize">Quantize to GGUF</h3>
          <div id="quantize-form" class="form"></div>
          <div class="buttons"><button id="quantize-start" class="primary" data-i18n="export.quantizeStart">Write GGUF</button></div>
          <div id="quantize-error" class="error"></div>
        </div>
      </div>
      <div id="export-result"></div>
    </section>
  </div>
  <aside class="side">
    <h2 data-i18n="jobs.title">Jobs</h2>
    <div id="jobs-list" class="jobs"></div>
    <div id="job-view" hidden>
      <h3><span id="job-title"></span> <span id="job-state" class="badge"></span></h3>
      <div class="progress"><div id="job-bar"></div></div>
      <div id="job-stats" class="stats"></div>
      <div id="job-error" class="error"></div>
      <div class="buttons">
        <button id="job-stop" data-i18n="job.stop">Stop</button>
        <button id="job-resume" data-i18n="job.resume">Resume</button>
      </div>
      <div class="chart-box" id="job-chart-box">
        <canvas id="job-chart" width="460" height="240"></canvas>
        <label class="smooth"><span data-i18n="job.smoothing">Smoothing</span> <input id="smoothing" type="range" min="0" max="0.99" step="0.01" value="0.6"> <span id="smoothing-value">0.60</span></label>
      </div>
      <h4 data-i18n="job.log">Log</h4>
      <pre id="job-log" class="log"></pre>
    </div>
  </aside>
</main>
<script>/*SCRIPT*/</script>
</body>
</html>
"""#
}
