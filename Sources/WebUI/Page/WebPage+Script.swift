extension WebPage {
    static let script = #"""
'use strict';
// ---------- words (English / Chinese; the choice is remembered) ----------
const WORDS = {
  en: {},
  zh: {
    'subtitle': '在 CPU 上微调', 'tab.train': '训练', 'tab.evaluate': '评估', 'tab.compare': '对比', 'tab.chat': '对话', 'tab.export': '导出',
    'key.label': '此服务需要密钥', 'key.send': '登录',
    'train.title': '训练', 'train.hint': 'peft train 的全部选项，显示默认值。路径相对于工作目录。',
    'train.previewData': '预览数据', 'train.previewCmd': '预览命令', 'train.start': '开始训练',
    'eval.title': '评估', 'eval.hint': '模型（可带适配器）的损失与困惑度；勾选 generate 时另算生成答案的 BLEU-4、ROUGE 与精确匹配。', 'eval.start': '开始评估',
    'compare.title': '对比', 'compare.hint': '在相同数据与预算下训练多种方法，用同一批问题评估，生成一份报告。', 'compare.start': '运行对比',
    'compare.history': '历史运行', 'compare.historyHint': '工作目录中的全部训练运行（来自本页、命令行或对比）；勾选以叠加其损失曲线。',
    'chat.title': '对话', 'chat.hint': '用模型和适配器（每行一个 NAME=DIR）启动对话服务，然后与一个或并排的两个模型对话。',
    'chat.start': '启动对话服务', 'chat.server': '服务', 'chat.system': '系统提示词', 'chat.placeholder': '输入问题…',
    'chat.send': '发送给 A', 'chat.sendBoth': '同时发送给 A 和 B', 'chat.stop': '停止', 'chat.clear': '清空',
    'export.title': '导出', 'export.merge': '把适配器合并进模型', 'export.mergeStart': '合并', 'export.quantize': '量化为 GGUF', 'export.quantizeStart': '写出 GGUF',
    'jobs.title': '任务', 'jobs.empty': '还没有任务', 'job.stop': '停止', 'job.resume': '继续训练', 'job.smoothing': '平滑', 'job.log': '日志',
    'more': '全部选项', 'step': '步', 'eta': '剩余', 'speed': '速度', 'memory': '内存', 'peak': '峰值', 'elapsed': '用时',
    'records': '条记录', 'examples': '个样本', 'tokens': '个 token', 'trained': '参与训练', 'dropped': '丢弃', 'record': '记录',
    'loss': '训练损失', 'eval_loss': '验证损失', 'no.metrics': '还没有曲线数据', 'disconnected': '与服务器的连接已断开，正在重连…',
    'metrics': '指标', 'predictions': '预测', 'prompt': '提示', 'reference': '参考答案', 'prediction': '模型答案',
    'output': '输出', 'size': '大小', 'report': '报告', 'default': '默认', 'none': '（无）', 'waiting': '等待对话服务启动…',
  },
};
const EN = {
  'more': 'All options', 'step': 'step', 'eta': 'ETA', 'speed': 'speed', 'memory': 'memory', 'peak': 'peak', 'elapsed': 'elapsed',
  'records': 'records', 'examples': 'examples', 'tokens': 'tokens', 'trained': 'trained', 'dropped': 'dropped', 'record': 'record',
  'loss': 'train loss', 'eval_loss': 'eval loss', 'no.metrics': 'no curve yet', 'disconnected': 'connection to the server lost, reconnecting…',
  'metrics': 'Metrics', 'predictions': 'Predictions', 'prompt': 'prompt', 'reference': 'reference', 'prediction': 'prediction',
  'output': 'output', 'size': 'size', 'report': 'Report', 'default': 'default', 'none': '(none)', 'waiting': 'waiting for the chat server to start…',
  'jobs.empty': 'no jobs yet',
};
let lang = localStorage.getItem('peft.lang') || 'en';
function t(key) { return (lang === 'zh' && WORDS.zh[key]) || EN[key] || key; }
function applyWords() {
  document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
  document.querySelectorAll('[data-i18n]').forEach(el => {
    if (!el.dataset.en) el.dataset.en = el.textContent;
    el.textContent = lang === 'zh' ? (WORDS.zh[el.dataset.i18n] || el.dataset.en) : el.dataset.en;
  });
  document.querySelectorAll('[data-i18n-placeholder]').forEach(el => {
    if (!el.dataset.enPlaceholder) el.dataset.enPlaceholder = el.placeholder;
    el.placeholder = lang === 'zh' ? (WORDS.zh[el.dataset.i18nPlaceholder] || el.dataset.enPlaceholder) : el.dataset.enPlaceholder;
  });
  document.querySelectorAll('details > summary.more').forEach(s => { s.textContent = t('more'); });
  $('lang').textContent = lang === 'zh' ? 'English' : '中文';
}

// ---------- helpers ----------
function $(id) { return document.getElementById(id); }
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v; else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v); else if (v !== undefined && v !== null) e.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}
function bytes(n) {
  if (n === undefined || n === null) return '–';
  const u = ['B', 'KB', 'MB', 'GB', 'TB']; let i = 0; let x = n;
  while (x >= 1000 && i < u.length - 1) { x /= 1000; i++; }
  return (i === 0 ? x : x.toFixed(x >= 100 ? 0 : x >= 10 ? 1 : 2)) + ' ' + u[i];
}
function showError(id, message) { const e = $(id); if (e) e.textContent = message || ''; }

async function api(path, options) {
  const o = Object.assign({ credentials: 'same-origin' }, options || {});
  if (o.json !== undefined) { o.method = o.method || 'POST'; o.headers = { 'Content-Type': 'application/json' }; o.body = JSON.stringify(o.json); delete o.json; }
  const response = await fetch(path, o);
  if (response.status === 401 && path.startsWith('/api/') && !path.startsWith('/api/chat/')) {
    console.warn('401 from ' + path);
    $('keybox').hidden = false; throw new Error('this server needs its key');
  }
  const type = response.headers.get('content-type') || '';
  const body = type.includes('json') ? await response.json() : await response.text();
  if (!response.ok) throw new Error((body && body.error) || String(body) || response.statusText);
  return body;
}

// ---------- forms built from each command's own option list ----------
const SCHEMAS = {};
let INFO = null, SUGGEST = {};
const LISTS = { model: 'models', 'ref-model': 'models', teacher: 'models', data: 'data', 'eval-data': 'data', adapter: 'adapters', 'dataset-dir': 'dataset_dirs' };

function buildForm(container, schema, spec) {
  container.innerHTML = '';
  container.dataset.command = schema.command;
  const primary = spec.primary || [];
  const hidden = new Set(spec.hide || []);
  const more = el('div');
  const details = el('details', {}, el('summary', { class: 'more', text: t('more') }), more);
  const byName = {};
  for (const o of schema.options) byName[o.name] = o;
  const order = primary.filter(n => byName[n]).concat(schema.options.map(o => o.name).filter(n => !primary.includes(n)));
  for (const name of order) {
    const o = byName[name];
    if (hidden.has(name)) continue;
    const field = makeField(o, spec);
    (primary.includes(name) ? container : more).append(field);
  }
  if (more.children.length) container.append(details);
  for (const [name, value] of Object.entries(spec.values || {})) setValue(container, name, value);
  if (spec.onChange) container.addEventListener('change', spec.onChange);
  updateMethodFields(container);
}

function makeField(o, spec) {
  let input;
  if (o.flag) {
    input = el('input', { type: 'checkbox' });
  } else if (o.choices) {
    input = el('select', {}, el('option', { value: '', text: o.default ? t('default') + ': ' + o.default : t('none') }));
    for (const c of o.choices) input.append(el('option', { value: c, text: c }));
  } else if (o.repeating || (spec.textarea || []).includes(o.name)) {
    input = el('textarea', { rows: 2, placeholder: o.default || '' });
  } else if (o.name === 'method') {
    input = el('select');
    for (const m of (INFO ? INFO.methods : [])) input.append(el('option', { value: m, text: m }));
  } else {
    input = el('input', { type: 'text', placeholder: o.default !== undefined ? o.default : '' });
    if (LISTS[o.name]) input.setAttribute('list', 'list-' + LISTS[o.name]);
  }
  input.dataset.option = o.name;
  input.id = (spec.prefix || '') + 'opt-' + o.name;
  const field = el('label', { class: 'field' + (o.methods ? ' method-only' : '') + ((o.repeating || o.name === 'adapter') && !o.flag ? ' wide' : '') },
    el('span', { class: 'name', text: '--' + o.name + (o.optional ? '' : ' *') }), input, el('small', { text: o.help }));
  if (o.methods) field.dataset.methods = o.methods.join(',');
  if (o.name === 'dataset-dir') input.addEventListener('change', () => loadDatasets(field.closest('.form')));
  return field;
}

function setValue(form, name, value) {
  const input = form.querySelector('[data-option="' + name + '"]');
  if (!input) return;
  if (input.type === 'checkbox') input.checked = !!value; else input.value = value;
}

function formValues(form) {
  const out = {};
  form.querySelectorAll('[data-option]').forEach(input => {
    const name = input.dataset.option;
    const field = input.closest('.field');
    if (field && field.hidden) return;
    if (input.type === 'checkbox') { if (input.checked) out[name] = true; return; }
    const v = input.value.trim();
    if (!v) return;
    out[name] = input.tagName === 'TEXTAREA' ? v.split('\n').map(s => s.trim()).filter(Boolean) : v;
  });
  return out;
}

function updateMethodFields(form) {
  const method = form.querySelector('[data-option="method"]');
  const m = method ? method.value || 'lora' : null;
  form.querySelectorAll('.field[data-methods]').forEach(f => { f.hidden = m !== null && !f.dataset.methods.split(',').includes(m); });
}

async function loadDatasets(form) {
  const dirInput = form.querySelector('[data-option="dataset-dir"]');
  const nameInput = form.querySelector('[data-option="dataset"]');
  if (!dirInput || !nameInput) return;
  const field = nameInput.closest('.field');
  let note = field.querySelector('.error');
  if (!note) { note = el('div', { class: 'error' }); field.append(note); }
  note.textContent = '';
  const listID = 'list-datasets-' + form.id;
  let list = $(listID);
  if (!list) { list = el('datalist', { id: listID }); document.body.append(list); nameInput.setAttribute('list', listID); }
  list.innerHTML = '';
  if (!dirInput.value.trim()) return;
  try {
    const r = await api('/api/datasets?dir=' + encodeURIComponent(dirInput.value.trim()));
    const problems = [];
    for (const d of r.datasets) {
      if (d.problem) problems.push(d.name + ': ' + d.problem); else list.append(el('option', { value: d.name, text: d.name + ' (' + d.formatting + (d.ranking ? ', pairs' : '') + ')' }));
    }
    note.textContent = problems.join('\n');
  } catch (e) { note.textContent = e.message; }
}

async function loadSuggestions() {
  try { SUGGEST = await api('/api/suggest'); } catch (e) { return; }
  for (const key of ['models', 'data', 'adapters', 'dataset_dirs']) {
    let list = $('list-' + key);
    if (!list) { list = el('datalist', { id: 'list-' + key }); document.body.append(list); }
    list.innerHTML = '';
    for (const v of SUGGEST[key] || []) list.append(el('option', { value: v }));
  }
}

// ---------- jobs ----------
let JOBS = [];
let selected = null;          // the job shown in the side panel
let view = null;              // {job, metrics, logs, source}
const resultShown = {};

async function refreshJobs() {
  try { JOBS = (await api('/api/jobs')).jobs; $('conn').textContent = ''; } catch (e) { $('conn').textContent = t('disconnected'); return; }
  const list = $('jobs-list');
  list.innerHTML = '';
  if (!JOBS.length) list.append(el('div', { class: 'empty', text: t('jobs.empty') }));
  for (const job of JOBS.slice().reverse()) {
    const p = job.progress || {};
    const pct = p.totalSteps ? Math.round(100 * p.step / p.totalSteps) + '%' : '';
    list.append(el('div', { class: 'job' + (job.id === selected ? ' selected' : ''), 'data-job': job.id, onclick: () => select(job.id) },
      el('span', { text: job.id }), el('span', { text: job.kind }), el('span', { text: describe(job) }),
      el('span', {}, el('span', { class: 'badge ' + job.state, text: job.state }), ' ' + pct)));
  }
  if (!selected && JOBS.length) select(JOBS[JOBS.length - 1].id);
  fillChatServers();
  showResults();
  if (!$('tab-compare').hidden) refreshHistory();
}

function describe(job) {
  const a = job.arguments || [];
  const get = n => { const i = a.indexOf('--' + n); return i >= 0 ? a[i + 1] : null; };
  const base = s => s ? s.split('/').filter(Boolean).pop() : '';
  if (job.kind === 'train') return (get('method') || 'lora') + ' → ' + base(job.output);
  if (job.kind === 'quantize') return (get('type') || '') + ' → ' + base(job.output);
  if (job.kind === 'serve') return base(get('model')) + (job.port ? ' :' + job.port : '');
  return base(job.output || get('model'));
}

function select(id) {
  if (view && view.source) view.source.close();
  selected = id;
  view = { job: JOBS.find(j => j.id === id) || null, metrics: [], logs: [], source: null };
  $('job-view').hidden = false;
  $('job-log').textContent = '';
  document.querySelectorAll('#jobs-list .job').forEach(r => r.classList.toggle('selected', r.dataset.job === id));
  const source = new EventSource('/api/jobs/' + encodeURIComponent(id) + '/events');
  view.source = source;
  const mine = () => view && view.source === source;
  source.addEventListener('log', e => { if (mine()) { view.logs.push(e.data); scheduleRender(); } });
  source.addEventListener('metric', e => { if (mine()) { try { view.metrics.push(JSON.parse(e.data)); } catch (_) {} scheduleRender(); } });
  source.addEventListener('state', e => { if (mine()) { view.job = JSON.parse(e.data); scheduleRender(); if (view.job.state && ['succeeded', 'failed', 'stopped', 'lost'].includes(view.job.state)) refreshJobs(); } });
  source.addEventListener('progress', e => { if (mine()) { view.job = JSON.parse(e.data); scheduleRender(); } });
  source.addEventListener('end', () => { source.close(); });
  source.onerror = () => { if (mine() && source.readyState !== EventSource.CLOSED) $('conn').textContent = t('disconnected'); };
  source.onopen = () => { $('conn').textContent = ''; };
  renderJob();
}

let renderPending = false;
function scheduleRender() { if (!renderPending) { renderPending = true; requestAnimationFrame(() => { renderPending = false; renderJob(); }); } }

function renderJob() {
  if (!view || !view.job) return;
  const job = view.job, p = job.progress || {};
  $('job-title').textContent = job.id + ' · ' + job.kind + ' · ' + describe(job);
  const badge = $('job-state'); badge.textContent = job.state; badge.className = 'badge ' + job.state;
  $('job-bar').style.width = p.totalSteps ? (100 * p.step / p.totalSteps) + '%' : (job.state === 'succeeded' ? '100%' : '0');
  const stats = $('job-stats'); stats.innerHTML = '';
  const stat = (k, v) => { if (v !== undefined && v !== null && v !== '') stats.append(el('span', {}, t(k) + ' ', el('b', { text: String(v) }))); };
  if (p.totalSteps) stats.append(el('span', {}, (p.phase && p.phase !== 'train' ? p.phase : t('step')) + ' ', el('b', { text: p.step + '/' + p.totalSteps })));
  stat('elapsed', p.elapsed); stat('eta', job.state === 'running' ? p.eta : null);
  stat('speed', p.tokensPerSecond ? Math.round(p.tokensPerSecond) + ' tok/s' : null);
  stat('memory', p.memoryBytes ? bytes(p.memoryBytes) : null); stat('peak', p.peakMemoryBytes ? bytes(p.peakMemoryBytes) : null);
  $('job-error').textContent = job.state === 'failed' || job.state === 'lost' ? (job.error || '') : '';
  $('job-stop').disabled = !['queued', 'running', 'stopping'].includes(job.state);
  $('job-resume').disabled = !(job.kind === 'train' && ['stopped', 'failed', 'lost'].includes(job.state));
  const log = $('job-log');
  const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 20;
  log.textContent = view.logs.slice(-400).join('\n');
  if (atBottom) log.scrollTop = log.scrollHeight;
  // Training runs have curves; the other jobs show their figures and log.
  $('job-chart-box').hidden = job.kind !== 'train';
  drawChart($('job-chart'), curves(view.metrics), Number($('smoothing').value));
}

function curves(metrics) {
  const train = [], evalPoints = [];
  for (const m of metrics) {
    if (m.type === 'train' && typeof m.loss === 'number') train.push([m.step, m.loss]);
    if (m.type === 'eval' && typeof m.eval_loss === 'number') evalPoints.push([m.step, m.eval_loss]);
  }
  return [{ name: t('loss'), points: train, color: '#2563eb', smooth: true }, { name: t('eval_loss'), points: evalPoints, color: '#dc2626', marker: true }];
}

// ---------- charts ----------
const PALETTE = ['#2563eb', '#dc2626', '#16a34a', '#9333ea', '#ea580c', '#0891b2', '#be185d', '#4d7c0f'];
function smoothed(points, weight) {
  // TensorBoard's debiased exponential moving average.
  let last = 0, n = 0; const out = [];
  for (const [x, y] of points) { last = last * weight + (1 - weight) * y; n++; out.push([x, last / (1 - Math.pow(weight, n))]); }
  return out;
}
function drawChart(canvas, series, weight) {
  const ctx = canvas.getContext('2d');
  const W = canvas.width, H = canvas.height, L = 48, R = 10, T = 22, B = 26;
  ctx.clearRect(0, 0, W, H);
  const all = series.flatMap(s => s.points);
  canvas.dataset.points = String(all.length);
  ctx.font = '11px system-ui, sans-serif';
  if (!all.length) { ctx.fillStyle = '#9ca3af'; ctx.fillText(t('no.metrics'), W / 2 - 40, H / 2); return; }
  let x0 = Math.min(...all.map(p => p[0])), x1 = Math.max(...all.map(p => p[0]));
  let y0 = Math.min(...all.map(p => p[1])), y1 = Math.max(...all.map(p => p[1]));
  if (x1 === x0) x1 = x0 + 1; if (y1 === y0) { y1 += 0.5; y0 -= 0.5; }
  const pad = (y1 - y0) * 0.05; y0 -= pad; y1 += pad;
  const X = x => L + (x - x0) / (x1 - x0) * (W - L - R), Y = y => T + (1 - (y - y0) / (y1 - y0)) * (H - T - B);
  ctx.strokeStyle = '#e5e7eb'; ctx.fillStyle = '#6b7280'; ctx.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const y = y0 + (y1 - y0) * i / 4; ctx.beginPath(); ctx.moveTo(L, Y(y)); ctx.lineTo(W - R, Y(y)); ctx.stroke();
    ctx.fillText(y.toFixed(y1 - y0 < 1 ? 3 : 2), 4, Y(y) + 4);
  }
  for (let i = 0; i <= 4; i++) { const x = x0 + (x1 - x0) * i / 4; ctx.fillText(String(Math.round(x)), X(x) - 8, H - 8); }
  let legendX = L;
  for (const s of series) {
    if (!s.points.length) continue;
    const line = (pts, alpha, width) => {
      ctx.globalAlpha = alpha; ctx.strokeStyle = s.color; ctx.lineWidth = width; ctx.beginPath();
      pts.forEach(([x, y], i) => { if (i) ctx.lineTo(X(x), Y(y)); else ctx.moveTo(X(x), Y(y)); }); ctx.stroke(); ctx.globalAlpha = 1;
    };
    if (s.smooth && weight > 0) { line(s.points, 0.25, 1); line(smoothed(s.points, weight), 1, 2); } else line(s.points, 1, s.marker ? 1.5 : 2);
    if (s.marker) { ctx.fillStyle = s.color; for (const [x, y] of s.points) { ctx.beginPath(); ctx.arc(X(x), Y(y), 3, 0, 7); ctx.fill(); } }
    ctx.fillStyle = s.color; ctx.fillRect(legendX, 6, 10, 10); ctx.fillStyle = '#374151'; ctx.fillText(s.name, legendX + 14, 15);
    legendX += ctx.measureText(s.name).width + 30;
  }
}

// ---------- results per tab ----------
async function showResults() {
  for (const job of JOBS) {
    if (!['succeeded', 'stopped', 'failed'].includes(job.state) || resultShown[job.id] === job.state) continue;
    if (!['eval', 'compare', 'merge', 'quantize'].includes(job.kind)) continue;
    resultShown[job.id] = job.state;
    let r;
    try { r = await api('/api/jobs/' + job.id + '/result'); } catch (e) { continue; }
    if (job.kind === 'eval') showEval(job, r);
    if (job.kind === 'compare' && r.report) {
      $('compare-result').innerHTML = '';
      $('compare-result').append(el('h3', { text: t('report') + ' · ' + job.id }), el('iframe', { class: 'report', id: 'compare-report', src: '/api/files?path=' + encodeURIComponent(r.report) }));
    }
    if ((job.kind === 'merge' || job.kind === 'quantize') && job.state === 'succeeded') {
      $('export-result').prepend(el('p', { class: 'ok export-done', 'data-job': job.id }, job.id + ' · ' + t('output') + ': ', el('code', { text: r.output }), ' · ' + t('size') + ': ', el('b', { class: 'export-size', text: bytes(r.bytes) })));
    }
  }
}

function showEval(job, r) {
  const box = $('eval-result');
  box.innerHTML = '';
  box.append(el('h3', { text: t('metrics') + ' · ' + job.id }));
  const table = el('table', { id: 'eval-metrics' });
  const flat = {};
  const walk = (o, prefix) => { for (const [k, v] of Object.entries(o || {})) { if (v && typeof v === 'object' && !Array.isArray(v)) walk(v, prefix + k + '.'); else if (!Array.isArray(v)) flat[prefix + k] = v; } };
  walk(r.metrics || {}, '');
  walk(r.benchmark || {}, 'benchmark.');
  for (const [k, v] of Object.entries(flat)) table.append(el('tr', {}, el('th', { text: k }), el('td', { text: typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toFixed(4)) : String(v) })));
  box.append(table);
  if (r.predictions && r.predictions.length) {
    box.append(el('h3', { text: t('predictions') }));
    const p = el('table', { id: 'eval-predictions' }, el('tr', {}, el('th', { text: '#' }), el('th', { text: t('prompt') }), el('th', { text: t('reference') }), el('th', { text: t('prediction') })));
    r.predictions.forEach((row, i) => p.append(el('tr', { class: 'prediction' }, el('td', { text: String(i + 1) }), el('td', { text: row.prompt || '' }), el('td', { text: row.reference || '' }), el('td', { text: row.prediction || '' }))));
    box.append(p);
  }
}

// ---------- history overlay: every training run of the workdir ----------
const historyChecked = new Set();
const historyMetrics = {};
let historyKey = '';
let RUNS = [];
async function refreshHistory() {
  try { RUNS = (await api('/api/runs')).runs; } catch (e) { return; }
  const key = RUNS.map(r => r.path + ':' + r.records).join(',');
  if (key === historyKey) return;
  historyKey = key;
  const list = $('history-list'); list.innerHTML = '';
  for (const run of RUNS) {
    const box = el('input', { type: 'checkbox', 'data-run': run.path });
    box.checked = historyChecked.has(run.path);
    box.addEventListener('change', () => { if (box.checked) historyChecked.add(run.path); else historyChecked.delete(run.path); drawHistory(); });
    list.append(el('label', {}, box, ' ' + run.name + ' (' + run.records + ')'));
  }
  if (historyChecked.size) drawHistory();
}
async function drawHistory() {
  const series = [];
  let i = 0;
  for (const path of historyChecked) {
    const run = RUNS.find(r => r.path === path);
    if (!historyMetrics[path] || !run || historyMetrics[path].records !== run.records) {
      try { historyMetrics[path] = { records: run ? run.records : 0, metrics: (await api('/api/runs/metrics?path=' + encodeURIComponent(path))).metrics }; }
      catch (e) { historyMetrics[path] = { records: 0, metrics: [] }; }
    }
    const pts = historyMetrics[path].metrics.filter(m => m.type === 'train' && typeof m.loss === 'number').map(m => [m.step, m.loss]);
    series.push({ name: run ? run.name : path, points: pts, color: PALETTE[i++ % PALETTE.length], smooth: true });
  }
  drawChart($('history-chart'), series, Number($('smoothing').value));
}

// ---------- chat ----------
let chatModelsFor = null;
const controllers = new Set();
function fillChatServers() {
  const select = $('chat-server');
  const running = JOBS.filter(j => j.kind === 'serve' && ['queued', 'running'].includes(j.state));
  const current = select.value;
  const ids = running.map(j => j.id + (j.port ? '' : '…')).join(',');
  if (select.dataset.ids === ids) return;
  select.dataset.ids = ids;
  select.innerHTML = '';
  for (const j of running) select.append(el('option', { value: j.id, text: j.id + ' · ' + describe(j) + (j.port ? '' : ' (' + t('waiting') + ')') }));
  if (running.some(j => j.id === current)) select.value = current;
  loadChatModels();
}
async function loadChatModels() {
  const id = $('chat-server').value;
  const job = JOBS.find(j => j.id === id);
  if (!job || !job.port) return;
  if (chatModelsFor === id) return;
  try {
    const models = (await api('/api/chat/' + id + '/v1/models')).data.map(m => m.id);
    chatModelsFor = id;
    document.querySelectorAll('.pane-model').forEach((s, i) => {
      s.innerHTML = '';
      for (const m of models) s.append(el('option', { value: m, text: m }));
      s.value = models[Math.min(i, models.length - 1)];
    });
  } catch (e) { showError('chat-error', e.message); }
}
function paneHistory(pane) {
  return [...pane.querySelectorAll('.msg')].filter(m => m.dataset.role).map(m => ({ role: m.dataset.role, content: m.textContent }));
}
async function ask(pane, question) {
  const id = $('chat-server').value;
  if (!id) { showError('chat-error', 'start a chat server first'); return; }
  const messages = [];
  const system = $('chat-system').value.trim();
  if (system) messages.push({ role: 'system', content: system });
  messages.push(...paneHistory(pane), { role: 'user', content: question });
  const list = pane.querySelector('.messages');
  list.append(el('div', { class: 'msg user', 'data-role': 'user', text: question }));
  const answer = el('div', { class: 'msg assistant', 'data-role': 'assistant' });
  list.append(answer);
  const controller = new AbortController();
  controllers.add(controller);
  try {
    const response = await fetch('/api/chat/' + id + '/v1/chat/completions', {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, signal: controller.signal, credentials: 'same-origin',
      body: JSON.stringify({ model: pane.querySelector('.pane-model').value, messages, stream: true,
        temperature: Number($('chat-temperature').value), top_p: Number($('chat-top-p').value), max_tokens: Number($('chat-max-tokens').value) }) });
    if (!response.ok) { const b = await response.json().catch(() => ({})); throw new Error((b.error && (b.error.message || b.error)) || response.statusText); }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf('\n\n')) >= 0) {
        const chunk = buffer.slice(0, cut); buffer = buffer.slice(cut + 2);
        for (const line of chunk.split('\n')) {
          if (!line.startsWith('data: ') || line === 'data: [DONE]') continue;
          const data = JSON.parse(line.slice(6));
          const delta = data.choices && data.choices[0] && data.choices[0].delta;
          if (delta && delta.content) { answer.textContent += delta.content; list.scrollTop = list.scrollHeight; }
        }
      }
    }
    answer.classList.add('done');
  } catch (e) {
    if (e.name !== 'AbortError') showError('chat-error', e.message);
    answer.classList.add('done');
  } finally { controllers.delete(controller); }
}

// ---------- tabs, buttons, start-up ----------
function showTab(name) {
  document.querySelectorAll('#tabs button').forEach(b => b.classList.toggle('active', b.dataset.tab === name));
  document.querySelectorAll('section.tab').forEach(s => { s.hidden = s.id !== 'tab-' + name; });
  localStorage.setItem('peft.tab', name);
  if (name === 'compare') refreshHistory();
}

async function startJob(command, form, errorID, extra) {
  showError(errorID, '');
  try {
    const options = Object.assign(formValues(form), extra || {});
    const job = await api('/api/jobs', { json: { command, options } });
    await refreshJobs();
    select(job.id);
    loadSuggestions();
    return job;
  } catch (e) { showError(errorID, e.message); return null; }
}

function latestAdapter() {
  const done = JOBS.filter(j => j.kind === 'train' && j.state === 'succeeded');
  return done.length ? done[done.length - 1].output : '';
}

async function init() {
  applyWords();
  $('lang').addEventListener('click', () => { lang = lang === 'zh' ? 'en' : 'zh'; localStorage.setItem('peft.lang', lang); applyWords(); if (view) renderJob(); });
  document.querySelectorAll('#tabs button').forEach(b => b.addEventListener('click', () => showTab(b.dataset.tab)));
  $('keybox').addEventListener('submit', async event => {
    event.preventDefault();
    try { await api('/api/login', { json: { key: $('key').value } }); $('keybox').hidden = true; location.reload(); } catch (e) { showError('key-error', e.message); }
  });
  try { INFO = await api('/api/info'); } catch (e) { $('conn').textContent = e.message; return; }
  for (const c of ['train', 'eval', 'compare', 'merge', 'quantize', 'serve', 'preview']) SCHEMAS[c] = await api('/api/schema/' + c);
  await loadSuggestions();
  const demo = INFO.demo;
  buildForm($('train-form'), SCHEMAS.train, {
    prefix: 'train-',
    primary: ['model', 'data', 'dataset-dir', 'dataset', 'eval-data', 'output', 'method', 'lora-r', 'lora-alpha', 'lora-dropout', 'target-modules',
      'num-virtual-tokens', 'adapter-config', 'reduction-factor', 'freeze-trainable-layers', 'lr', 'epochs', 'max-steps', 'batch-size', 'grad-accum',
      'max-length', 'eval-every', 'save-every', 'dtype', 'template', 'stage'],
    hide: ['resume'],
    values: { model: demo.model, data: demo.train, 'eval-data': demo.test, lr: '3e-3', 'eval-every': '50', 'save-every': '50' },
    onChange: e => { if (e.target.dataset.option === 'method') updateMethodFields($('train-form')); },
  });
  buildForm($('eval-form'), SCHEMAS.eval, { prefix: 'eval-', primary: ['model', 'adapter', 'data', 'generate', 'limit', 'max-new-tokens', 'benchmark', 'benchmark-dir', 'template'],
    hide: ['json', 'output-dir', 'output'], values: { model: demo.model, data: demo.test, generate: true, limit: '5', 'max-new-tokens': '64' } });
  buildForm($('compare-form'), SCHEMAS.compare, { prefix: 'compare-', primary: ['model', 'data', 'eval-data', 'methods', 'max-steps', 'questions', 'max-new-tokens'],
    values: { model: demo.model, data: demo.train, 'eval-data': demo.test, methods: 'lora,ia3', 'max-steps': '40', questions: '3', 'max-new-tokens': '48' } });
  buildForm($('chat-form'), SCHEMAS.serve, { prefix: 'chat-', primary: ['model', 'adapter', 'dtype', 'template', 'max-model-len'],
    hide: ['host', 'port', 'api-key'], textarea: ['adapter'], values: { model: demo.model } });
  buildForm($('merge-form'), SCHEMAS.merge, { prefix: 'merge-', primary: ['model', 'adapter', 'output'], values: { model: demo.model } });
  buildForm($('quantize-form'), SCHEMAS.quantize, { prefix: 'quantize-', primary: ['model', 'adapter', 'type', 'output'], values: { model: demo.model, type: 'q8_0' } });

  // Compare: a box per method beside the comma list.
  const methodsInput = $('compare-opt-methods');
  if (methodsInput) {
    const boxes = el('div', { class: 'row', id: 'compare-method-boxes' });
    const sync = () => { const chosen = methodsInput.value.split(',').map(s => s.trim()); boxes.querySelectorAll('input').forEach(b => { b.checked = chosen.includes(b.value); }); };
    for (const m of INFO.methods) {
      const box = el('input', { type: 'checkbox', value: m });
      box.addEventListener('change', () => {
        const chosen = [...boxes.querySelectorAll('input')].filter(b => b.checked).map(b => b.value);
        methodsInput.value = chosen.join(',');
      });
      boxes.append(el('label', {}, box, ' ' + m));
    }
    methodsInput.closest('.field').after(boxes);
    boxes.style.gridColumn = '1 / -1';
    methodsInput.addEventListener('input', sync);
    sync();
  }
  $('train-preview-cmd').addEventListener('click', async () => {
    showError('train-error', '');
    try {
      const r = await api('/api/command', { json: { command: 'train', options: formValues($('train-form')) } });
      // The output folder the server chose is written into the form, so Start runs exactly this line.
      for (const [k, v] of Object.entries(r.filled || {})) setValue($('train-form'), k, v);
      $('train-cmd').hidden = false; $('train-cmd').textContent = r.line;
    }
    catch (e) { showError('train-error', e.message); }
  });
  $('train-preview-data').addEventListener('click', async () => {
    showError('train-error', '');
    const box = $('train-data'); box.innerHTML = '';
    try {
      const r = await api('/api/preview', { json: { options: Object.assign(formValues($('train-form')), { count: 3 }) } });
      box.append(el('p', { id: 'preview-summary', text: r.records + ' ' + t('records') + ', ' + r.examples + ' ' + t('examples') + ', ' + r.tokens + ' ' + t('tokens') + ' (' + r.trained_tokens + ' ' + t('trained') + '), ' + r.dropped + ' ' + t('dropped') + '; ' + r.format }));
      for (const s of r.samples) {
        const div = el('div', { class: 'segments' }, el('small', { text: t('record') + ' ' + s.record + ' · ' + s.tokens + ' ' + t('tokens') + ', ' + s.trained_tokens + ' ' + t('trained') + '\n' }));
        for (const seg of s.segments) div.append(seg.trained ? el('mark', { text: seg.text }) : document.createTextNode(seg.text));
        box.append(div);
      }
    } catch (e) { showError('train-error', e.message); }
  });
  $('train-start').addEventListener('click', () => startJob('train', $('train-form'), 'train-error'));
  $('eval-start').addEventListener('click', () => startJob('eval', $('eval-form'), 'eval-error'));
  $('compare-start').addEventListener('click', () => startJob('compare', $('compare-form'), 'compare-error'));
  $('chat-start').addEventListener('click', async () => { chatModelsFor = null; const j = await startJob('serve', $('chat-form'), 'chat-error'); if (j) { $('chat-server').dataset.ids = ''; fillChatServers(); $('chat-server').value = j.id; } });
  $('merge-start').addEventListener('click', () => startJob('merge', $('merge-form'), 'merge-error'));
  $('quantize-start').addEventListener('click', () => startJob('quantize', $('quantize-form'), 'quantize-error'));
  $('chat-server').addEventListener('change', () => { chatModelsFor = null; loadChatModels(); });
  $('chat-send').addEventListener('click', () => { const q = $('chat-input').value.trim(); if (q) { $('chat-input').value = ''; ask($('pane-a'), q); } });
  $('chat-send-both').addEventListener('click', () => { const q = $('chat-input').value.trim(); if (q) { $('chat-input').value = ''; ask($('pane-a'), q); ask($('pane-b'), q); } });
  $('chat-stop').addEventListener('click', () => { for (const c of controllers) c.abort(); });
  $('chat-clear').addEventListener('click', () => document.querySelectorAll('.pane .messages').forEach(m => { m.innerHTML = ''; }));
  $('job-stop').addEventListener('click', async () => { try { await api('/api/jobs/' + selected + '/stop', { json: {} }); refreshJobs(); } catch (e) { $('job-error').textContent = e.message; } });
  $('job-resume').addEventListener('click', async () => {
    try { const j = await api('/api/jobs/' + selected + '/resume', { json: {} }); await refreshJobs(); select(j.id); } catch (e) { $('job-error').textContent = e.message; }
  });
  $('smoothing').addEventListener('input', () => { $('smoothing-value').textContent = Number($('smoothing').value).toFixed(2); if (view) renderJob(); drawHistory(); });
  document.querySelectorAll('[data-tab="export"]').forEach(b => b.addEventListener('click', () => {
    const a = latestAdapter();
    for (const f of ['merge-form', 'quantize-form']) { const input = $(f).querySelector('[data-option="adapter"]'); if (input && !input.value && a) input.value = a; }
  }));
  applyWords();
  showTab(localStorage.getItem('peft.tab') || 'train');
  await refreshJobs();
  setInterval(refreshJobs, 2000);
  setInterval(loadChatModels, 2000);
}
init();
"""#
}
