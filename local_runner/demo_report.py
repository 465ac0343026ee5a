"""The timeline of `python -m local_runner demo`: events as they happen, then as text, JSON and one HTML page.

`DemoFacts` holds what the demo read back at each transition (versions registered and their
statuses, the versions /ping reported, the alarm per window, data versions), the page's headline. A
`Timeline` records each event of the lifecycle demo with the seconds since the demo started, the stage
it belongs to, a sentence saying what happened, an optional verdict (good, bad or neutral) and the numbers
behind it (RMSE, the drift metric against its threshold, the version served...). It echoes each event as
one line when it is added and measures each stage's duration. `write_timeline` writes `timeline.txt`,
`timeline.json` and `timeline.html` into a folder: the page is self-contained like the execution report
(`local_runner.report`: inline CSS, a Content-Security-Policy that forbids every fetch), so it opens
offline anywhere.
"""

from __future__ import annotations

import html
import json
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from local_runner.report import STYLE as REPORT_STYLE

_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


@dataclass(frozen=True)
class Event:
    """One timeline entry: when, in which stage, what happened, and its numbers."""

    seconds: float
    stage: str
    text: str
    ok: bool | None = None
    numbers: dict[str, Any] = field(default_factory=dict)


@dataclass
class Timeline:
    """Events and stage durations of one demo run; `echo` prints each event as it is added."""

    echo: Callable[[str], object] = print
    events: list[Event] = field(default_factory=list)
    stages: dict[str, float] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)

    def elapsed(self) -> float:
        """Seconds since the timeline started."""
        return time.perf_counter() - self.started

    def add(self, stage: str, text: str, ok: bool | None = None, **numbers: Any) -> Event:
        """Record an event of `stage` at the current time and echo it; returns the event."""
        event = Event(round(self.elapsed(), 1), stage, text, ok, numbers)
        self.events.append(event)
        self.echo(event_line(event))
        return event

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time a stage (its duration is kept even when it raises)."""
        begun = time.perf_counter()
        try:
            yield
        finally:
            self.stages[name] = round(self.stages.get(name, 0.0) + time.perf_counter() - begun, 1)

    def of(self, stage: str) -> list[Event]:
        """The events of one stage, in the order they were added."""
        return [event for event in self.events if event.stage == stage]


@dataclass
class DemoFacts:
    """What happened, read back from the registry, the endpoint and the reports (the test asserts these)."""

    registered: list[int] = field(default_factory=list)
    statuses: dict[int, str] = field(default_factory=dict)
    served: list[str | None] = field(default_factory=list)  # versions /ping reported, in order
    drift_flags: list[bool] = field(default_factory=list)  # the alarm rule per monitoring window
    data_versions: list[str] = field(default_factory=list)
    fresh_steps: list[int] = field(default_factory=list)  # job steps not taken from the cache, per run
    champion: list[int | None] = field(default_factory=list)
    gate_passed: list[bool] = field(default_factory=list)
    ab: dict[str, Any] = field(default_factory=dict)  # the A/B phase: split, per-variant rows, winner


def summary_cards(facts: DemoFacts, seconds: float) -> dict[str, Any]:
    """The page's headline: what each transition came to."""
    return {
        "versions registered": facts.registered,
        "final statuses": ", ".join(f"v{v} {s}" for v, s in sorted(facts.statuses.items())),
        "served, in order": " → ".join(str(v) for v in facts.served),
        "drift alarm per window": ", ".join("ALARM" if flag else "OK" for flag in facts.drift_flags),
        "data versions": " → ".join(facts.data_versions),
        **({"A/B test: requests, RMSE": ab_card(facts.ab)} if facts.ab.get("winner") else {}),
        "wall time (s)": round(seconds, 1),
    }


def ab_card(ab: Mapping[str, Any]) -> str:
    """Per variant its version, requests and RMSE, then the winner: the page's A/B headline."""
    parts = []
    for (variant, row), version in zip(ab["comparison"].items(), ab["versions"], strict=False):
        rmse = "-" if row["rmse"] is None else f"{row['rmse']:.1f}"
        parts.append(f"{variant} v{version}: {row['requests']}, {rmse}")
    return " · ".join(parts) + f" → {ab['winner']} promoted"


def _mark(ok: bool | None) -> str:
    return {True: "ok ", False: "!! ", None: "   "}[ok]


def format_number(value: Any) -> str:
    """A number for the timeline: 3 decimals below 10, else 1; lists comma-joined."""
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    if isinstance(value, list | tuple):
        return ",".join(str(item) for item in value) or "-"
    return str(value)


def event_line(event: Event) -> str:
    """An event as text, its numbers on a second indented line."""
    numbers = "  ".join(f"{name}={format_number(value)}" for name, value in event.numbers.items())
    line = f"[{event.seconds:7.1f}s] {_mark(event.ok)}{event.stage:<16} {event.text}"
    return f"{line}\n{'':>30}{numbers}" if numbers else line


def text_lines(timeline: Timeline, title: str) -> list[str]:
    """The timeline as text: the events, then the seconds per stage and in total."""
    lines = [title, ""]
    lines += [event_line(event) for event in timeline.events]
    lines += ["", f"{'stage':<24} {'seconds':>8}"]
    lines += [f"{name:<24} {seconds:>8.1f}" for name, seconds in timeline.stages.items()]
    lines.append(f"{'total':<24} {timeline.elapsed():>8.1f}")
    return lines


# -- the page ------------------------------------------------------------------------------------------------
def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _numbers(numbers: Mapping[str, Any]) -> str:
    if not numbers:
        return ""
    cells = "".join(
        f'<span class="num"><b>{_e(name)}</b> {_e(format_number(value))}</span>'
        for name, value in numbers.items()
    )
    return f'<div class="nums">{cells}</div>'


def _event_row(event: Event) -> str:
    kind = {True: "good", False: "bad", None: "neutral"}[event.ok]
    return (
        f'<tr class="{kind}"><td class="mono">{event.seconds:.1f}s</td><td>{_e(event.stage)}</td>'
        f"<td>{_e(event.text)}{_numbers(event.numbers)}</td></tr>"
    )


def _stage_bars(stages: Mapping[str, float], total: float) -> str:
    rows = []
    for name, seconds in stages.items():
        share = 100.0 * seconds / total if total else 0.0
        bar = f'<span class="bar"><span style="width:{share:.1f}%"></span></span>'
        rows.append(f"<tr><td>{_e(name)}</td><td>{bar}{seconds:.1f} s</td></tr>")
    return (
        f"<table><thead><tr><th>stage</th><th>seconds</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def render_page(timeline: Timeline, title: str, summary: Mapping[str, Any], sections: str = "") -> str:
    """The whole HTML document: the summary cards, the events in order, `sections` (HTML, already escaped)
    and the stage durations."""
    total = timeline.elapsed()
    cards = "".join(
        f'<div class="card"><div class="label">{_e(name)}</div>'
        f'<div class="value">{_e(format_number(value))}</div></div>'
        for name, value in summary.items()
    )
    rows = "".join(_event_row(event) for event in timeline.events)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{_CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title>
<style>{REPORT_STYLE}{_STYLE}</style></head>
<body><header><h1>{_e(title)}</h1><p>{len(timeline.events)} events in {total:.1f} s</p></header>
<main><div class="cards">{cards}</div>
<section id="timeline"><h2>Timeline</h2><table class="timeline"><thead><tr><th>at</th><th>stage</th>
<th>what happened, and the numbers behind it</th></tr></thead><tbody>{rows}</tbody></table></section>
{sections}
<section id="stages"><h2>Stage durations</h2>{_stage_bars(timeline.stages, total)}</section></main>
<footer>Written by python -m local_runner demo.</footer></body></html>
"""


def write_timeline(
    timeline: Timeline, folder: Path, title: str, summary: Mapping[str, Any], sections: str = ""
) -> dict[str, Path]:
    """timeline.txt, timeline.json and timeline.html (with `sections`) in `folder`; their paths by kind."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {kind: folder / f"timeline.{kind}" for kind in ("txt", "json", "html")}
    paths["txt"].write_text("\n".join(text_lines(timeline, title)) + "\n", encoding="utf-8")
    document = {
        "title": title,
        "seconds": round(timeline.elapsed(), 1),
        "summary": dict(summary),
        "stages": timeline.stages,
        "events": [asdict(event) for event in timeline.events],
    }
    paths["json"].write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")
    paths["html"].write_text(render_page(timeline, title, summary, sections), encoding="utf-8")
    return paths


_STYLE = """
table.timeline td:first-child { white-space:nowrap; color:var(--muted); }
tr.good td:nth-child(2) { border-left:4px solid var(--good); }
tr.bad td:nth-child(2) { border-left:4px solid var(--bad); background:#fdecea; }
tr.neutral td:nth-child(2) { border-left:4px solid var(--line); }
.nums { margin-top:3px; display:flex; flex-wrap:wrap; gap:4px 12px; }
.num { font-family:"DejaVu Sans Mono", Menlo, Consolas, monospace; font-size:12px; color:var(--muted); }
.num b { color:var(--fg); font-weight:600; }
.card .value { font-size:18px; }
"""
