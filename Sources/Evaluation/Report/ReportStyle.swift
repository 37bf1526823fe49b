/// The inline style sheet of the HTML report: light, readable on a laptop screen, printable, CJK fonts first in the
/// fallback list so Han characters get Simplified Chinese glyphs.
enum ReportStyle {
    static let css = """
    :root { color-scheme: light; }
    * { box-sizing: border-box; }
    body { margin: 0; background: #f1f5f9; color: #0f172a; line-height: 1.5; font-size: 15px;
      font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, "Noto Sans CJK SC",
        "Source Han Sans SC", "PingFang SC", "Microsoft YaHei", "Noto Sans CJK JP", sans-serif; }
    main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 40px; }
    header h1 { font-size: 26px; margin: 0 0 4px; }
    .subtitle { color: #475569; margin: 0; }
    .notes { margin: 12px 0 0; padding: 8px 14px 8px 30px; background: #fffbeb; border: 1px solid #fde68a;
      border-radius: 6px; color: #713f12; }
    section { background: #ffffff; border: 1px solid #e2e8f0; border-radius: 8px; padding: 16px 20px;
      margin-top: 18px; }
    h2 { font-size: 18px; margin: 0 0 10px; }
    .caption { color: #64748b; font-size: 13px; margin: 6px 0 0; }
    .chart { display: block; width: 100%; max-width: 900px; height: auto; margin: 0 auto; }
    table { border-collapse: collapse; width: 100%; }
    .scroll { overflow-x: auto; }
    .sample { border-top: 1px solid #e2e8f0; padding: 6px 0; }
    .sample p { margin: 2px 0; }
    h3 { font-size: 15px; margin: 14px 0 4px; }
    th, td { border-bottom: 1px solid #e2e8f0; padding: 6px 10px; text-align: left; vertical-align: top; }
    thead th { background: #f8fafc; border-bottom: 2px solid #cbd5e1; font-weight: 600; }
    table.metrics { width: auto; }
    table.metrics td { text-align: right; font-variant-numeric: tabular-nums; min-width: 90px; }
    table.metrics thead th { text-align: right; }
    table.metrics thead th:first-child { text-align: left; }
    table.metrics th.dir { color: #94a3b8; font-weight: 400; padding-left: 0; width: 20px; }
    td.best { background: #dcfce7; font-weight: 600; }
    td.good { color: #15803d; }
    td.bad { color: #b91c1c; }
    .sub { display: block; color: #64748b; font-size: 11px; font-weight: 400; }
    table.samples { table-layout: fixed; font-size: 14px; }
    table.samples th.idx, table.samples td.idx { width: 36px; color: #64748b; }
    table.samples tbody tr:nth-child(even) { background: #f8fafc; }
    .text { white-space: pre-wrap; overflow-wrap: anywhere; }
    td.ref .text { color: #1e3a8a; }
    .score { margin-top: 4px; color: #64748b; font-size: 12px; }
    .empty { color: #94a3b8; font-style: italic; }
    table.settings { width: auto; min-width: 420px; font-size: 14px; }
    table.settings th, table.settings td { vertical-align: baseline; }
    table.settings th { font-weight: 500; color: #334155; }
    table.settings td { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, "Noto Sans Mono CJK SC",
      monospace; overflow-wrap: anywhere; }
    .nodata { color: #64748b; font-style: italic; }
    footer { color: #94a3b8; font-size: 12px; margin-top: 18px; text-align: center; }
    @media print { body { background: #ffffff; } section { border-color: #cbd5e1; }
      .chart, table.metrics { break-inside: avoid; } }
    """
}
