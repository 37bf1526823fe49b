extension WebPage {
    static let style = #"""
:root { --fg: #1d232b; --muted: #66707c; --line: #d9dee4; --bg: #f6f7f9; --card: #fff; --accent: #2563eb; --ok: #15803d; --bad: #b91c1c; --warn: #b45309; }
* { box-sizing: border-box; }
[hidden] { display: none !important; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", "Noto Sans CJK SC", "PingFang SC", sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; align-items: center; gap: 16px; padding: 8px 16px; background: #111827; color: #fff; }
header h1 { font-size: 18px; margin: 0; }
header h1 small { font-weight: normal; color: #9ca3af; font-size: 12px; }
nav button { background: none; border: 0; color: #d1d5db; padding: 6px 12px; font-size: 14px; cursor: pointer; border-radius: 6px; }
nav button.active { background: #374151; color: #fff; }
#lang { margin-left: auto; background: #374151; color: #fff; border: 0; border-radius: 6px; padding: 4px 10px; cursor: pointer; }
.conn { font-size: 12px; color: #fca5a5; }
main { display: grid; grid-template-columns: minmax(0, 1fr) 500px; gap: 16px; padding: 16px; }
.work, .side { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 12px 16px; min-width: 0; }
h2 { margin: 4px 0 8px; font-size: 17px; } h3 { font-size: 15px; margin: 12px 0 6px; } h4 { margin: 10px 0 4px; font-size: 13px; }
.hint { color: var(--muted); margin: 0 0 8px; font-size: 13px; }
.form { display: grid; grid-template-columns: repeat(auto-fill, minmax(230px, 1fr)); gap: 8px 14px; }
.form details { grid-column: 1 / -1; }
.form details > div { display: grid; grid-template-columns: repeat(auto-fill, minmax(230px, 1fr)); gap: 8px 14px; margin-top: 8px; }
.field { display: flex; flex-direction: column; gap: 2px; min-width: 0; }
.field.wide { grid-column: 1 / -1; }
.field > span.name { font-family: ui-monospace, monospace; font-size: 12px; }
.field > small { color: var(--muted); font-size: 11px; line-height: 1.3; }
.field.method-only > span.name::after { content: " •"; color: var(--accent); }
input, select, textarea { font: inherit; padding: 4px 6px; border: 1px solid var(--line); border-radius: 5px; background: #fff; min-width: 0; }
textarea { width: 100%; }
.buttons { display: flex; gap: 8px; margin: 10px 0; flex-wrap: wrap; }
button { font: inherit; padding: 5px 12px; border: 1px solid var(--line); border-radius: 6px; background: #fff; cursor: pointer; }
button.primary { background: var(--accent); border-color: var(--accent); color: #fff; }
button:disabled { opacity: .45; cursor: default; }
.error { color: var(--bad); white-space: pre-wrap; font-size: 13px; }
.cmd { background: #0f172a; color: #e2e8f0; padding: 8px 10px; border-radius: 6px; white-space: pre-wrap; word-break: break-all; font-size: 12px; }
.log { background: #0f172a; color: #cbd5e1; padding: 8px; border-radius: 6px; height: 220px; overflow: auto; font-size: 11px; white-space: pre-wrap; margin: 0; }
.jobs { max-height: 230px; overflow: auto; border: 1px solid var(--line); border-radius: 6px; }
.jobs .job { display: grid; grid-template-columns: 74px 64px 1fr 80px; gap: 6px; padding: 4px 8px; border-bottom: 1px solid var(--line); cursor: pointer; font-size: 12px; align-items: center; }
.jobs .job.selected { background: #eff6ff; }
.jobs .empty { padding: 8px; color: var(--muted); }
.badge { display: inline-block; font-size: 11px; padding: 1px 7px; border-radius: 10px; background: #e5e7eb; }
.badge.running, .badge.stopping { background: #dbeafe; color: #1d4ed8; } .badge.succeeded { background: #dcfce7; color: var(--ok); }
.badge.failed, .badge.lost { background: #fee2e2; color: var(--bad); } .badge.stopped { background: #fef3c7; color: var(--warn); }
.progress { height: 8px; background: #e5e7eb; border-radius: 4px; overflow: hidden; margin: 6px 0; }
.progress > div { height: 100%; width: 0; background: var(--accent); transition: width .3s; }
.stats { display: flex; flex-wrap: wrap; gap: 4px 14px; font-size: 12px; color: var(--muted); }
.stats b { color: var(--fg); font-weight: 600; }
.chart-box { position: relative; margin-top: 8px; }
canvas { width: 100%; height: auto; border: 1px solid var(--line); border-radius: 6px; background: #fff; }
.smooth { font-size: 12px; color: var(--muted); display: flex; align-items: center; gap: 6px; }
table { border-collapse: collapse; width: 100%; font-size: 12px; margin: 8px 0; }
th, td { border: 1px solid var(--line); padding: 4px 6px; text-align: left; vertical-align: top; white-space: pre-wrap; }
th { background: #f3f4f6; }
.segments { white-space: pre-wrap; font-size: 12px; border: 1px solid var(--line); border-radius: 6px; padding: 8px; margin: 6px 0; background: #fafafa; }
.segments mark { background: #fde68a; }
.history { display: flex; flex-wrap: wrap; gap: 4px 14px; font-size: 12px; }
iframe.report { width: 100%; height: 640px; border: 1px solid var(--line); border-radius: 6px; }
.row { display: flex; gap: 12px; flex-wrap: wrap; margin: 8px 0; align-items: center; }
.panes { display: grid; grid-template-columns: 1fr 1fr; gap: 10px; }
.pane { border: 1px solid var(--line); border-radius: 6px; padding: 6px; min-height: 220px; display: flex; flex-direction: column; gap: 6px; min-width: 0; }
.messages { display: flex; flex-direction: column; gap: 6px; overflow: auto; max-height: 420px; }
.msg { padding: 6px 8px; border-radius: 6px; white-space: pre-wrap; word-break: break-word; }
.msg.user { background: #eff6ff; align-self: flex-end; } .msg.assistant { background: #f3f4f6; }
.two { display: grid; grid-template-columns: 1fr 1fr; gap: 16px; }
.keybox { background: #fef3c7; padding: 8px 16px; display: flex; gap: 10px; align-items: center; }
.ok { color: var(--ok); }
@media (max-width: 1100px) { main { grid-template-columns: 1fr; } .two, .panes { grid-template-columns: 1fr; } }
"""#
}
