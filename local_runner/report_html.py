"""The HTML building blocks of the runner's reports: escaping, numbers, tables, sections, badges, style.

Every function returns a fragment of already-escaped HTML; `STYLE` is the inline stylesheet shared by the
execution report (`local_runner.report`) and the demo page (`local_runner.demo_report`). Nothing here
fetches anything: the pages that use it open offline.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import Any


def escape(value: Any) -> str:
    """`value` as text, escaped for HTML content and attributes."""
    return html.escape(str(value), quote=True)


def number(value: Any, digits: int = 2) -> str:
    """A number with thousands separators (`digits` decimals for floats), "—" for None."""
    if value is None:
        return "—"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return escape(value)
    return f"{value:,.{digits}f}" if isinstance(value, float) else f"{value:,}"


def table(headers: Iterable[str], rows: Iterable[Iterable[str]], css: str = "") -> str:
    """Rows of already-escaped cells; a row may start with a `<tr ...>` marker as its first cell."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = list(row)
        opener = cells.pop(0) if cells and cells[0].startswith("<tr") else "<tr>"
        body.append(opener + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def section(title: str, body: str, anchor: str) -> str:
    """A titled `<section>` with the anchor `anchor`."""
    return f'<section id="{anchor}"><h2>{escape(title)}</h2>{body}</section>'


def missing(what: str) -> str:
    """The note shown in place of a part the execution did not produce."""
    return f'<p class="missing">{escape(what)}</p>'


def badge(text: str, good: bool | None) -> str:
    """A coloured status label: green when `good`, red when not, grey when None."""
    kind = "neutral" if good is None else ("good" if good else "bad")
    return f'<span class="badge {kind}">{escape(text)}</span>'


# Shared with the demo page (local_runner.demo_report).
STYLE = """
:root { --fg:#1d2733; --muted:#5b6776; --line:#dde3ea; --bg:#f6f8fa; --good:#1a7f37; --bad:#c62828;
        --accent:#2f6fb3; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color:var(--fg);
       background:var(--bg); }
header { background:#16324f; color:#fff; padding:18px 32px; }
header h1 { margin:0 0 4px; font-size:22px; }
header p { margin:0; }
main { padding:16px 32px 8px; max-width:1280px; }
section { background:#fff; border:1px solid var(--line); border-radius:8px; padding:12px 18px;
          margin:14px 0; }
h2 { font-size:17px; margin:4px 0 10px; color:#16324f; }
h3 { font-size:14px; margin:10px 0 6px; }
table { border-collapse:collapse; width:100%; margin:6px 0 10px; }
th, td { text-align:left; padding:5px 8px; border-bottom:1px solid var(--line); vertical-align:top; }
th { background:#eef2f6; font-weight:600; }
tr.best td { background:#fff7d6; font-weight:600; }
tr.drifted td { background:#fdecea; }
.star { color:#a86b00; }
.cards { display:flex; flex-wrap:wrap; gap:10px; margin:6px 0; }
.card { background:#fff; border:1px solid var(--line); border-radius:8px; padding:10px 14px;
        min-width:150px; }
.card .label { color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.04em; }
.card .value { font-size:24px; font-weight:600; }
.card .note { color:var(--muted); font-size:12px; }
.badge { display:inline-block; padding:1px 8px; border-radius:10px; font-size:12px; font-weight:600;
         color:#fff; background:var(--muted); }
.badge.good { background:var(--good); } .badge.bad { background:var(--bad); }
.card .badge { font-size:18px; padding:2px 12px; }
.mono { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size:12px; word-break:break-all; }
.bar { display:inline-block; width:120px; height:10px; background:#e8edf3; margin-right:8px;
       border-radius:5px; }
.bar span { display:block; height:10px; background:var(--accent); border-radius:5px; }
.plots { display:flex; flex-wrap:wrap; gap:14px; }
figure { margin:0; } figure img { max-width:560px; width:100%; border:1px solid var(--line); }
figcaption { color:var(--muted); font-size:12px; }
.missing { color:var(--muted); font-style:italic; }
.failure { background:#fdecea; color:var(--bad); padding:6px 10px; border-radius:6px; white-space:pre-wrap; }
pre { background:var(--bg); padding:8px; overflow:auto; font-size:12px; }
footer { color:var(--muted); padding:4px 32px 24px; font-size:12px; }
"""
