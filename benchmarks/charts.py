"""Small SVG line charts of the benchmark curves, written as text (no plotting library).

``line_chart`` draws one or more series of (x, y) points on linear or log2 x
axes, with "nice" y ticks from 0, optional horizontal reference lines (a
target, a baseline) and a legend. The output depends only on the input (no
timestamps, no random ids), so a chart re-rendered from the same figures is
byte-for-byte the same file: the README's charts can be checked like its text.

``render(results)`` makes every chart of the performance section from the
summary ``benchmarks.report`` writes (``docs/performance/results.json``).
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field
from functools import reduce
from html import escape

WIDTH, HEIGHT = 600, 340
LEFT, RIGHT, TOP, BOTTOM = 72, 170, 40, 52  # margins: the legend sits on the right
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
REFERENCE_DASHES = ("2 3", "8 3 2 3")
FONT = 'font-family="Helvetica, Arial, sans-serif"'


@dataclass
class Series:
    name: str
    points: list[tuple[float, float]]
    dashed: bool = False
    markers: bool = True


@dataclass
class Reference:
    """A horizontal line across the plot at ``y``, labelled at its right end."""

    label: str
    y: float


@dataclass
class Chart:
    title: str
    x_label: str
    y_label: str
    series: list[Series]
    x_ticks: list[float]
    log_x: bool = False
    references: list[Reference] = field(default_factory=list)
    y_unit: str = ""


def nice_ticks(top: float, count: int = 5) -> list[float]:
    """Ticks from 0 to at least ``top`` at a step of 1, 2, 2.5 or 5 x 10^k."""
    if top <= 0:
        return [0.0, 1.0]
    raw = top / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    ticks = [0.0]
    while ticks[-1] < top - 1e-9:
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


def _number(value: float) -> str:
    if value >= 10_000:
        return f"{value / 1000:g}k"
    if value == int(value):
        return f"{int(value)}"
    return f"{value:g}"


def line_chart(chart: Chart) -> str:
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    ys = [y for s in chart.series for _, y in s.points] + [r.y for r in chart.references]
    y_ticks = nice_ticks(max(ys) * 1.05 if ys else 1)
    y_top = y_ticks[-1]
    xs = chart.x_ticks

    def fx(x: float) -> float:
        if chart.log_x:
            low, high = math.log2(xs[0]), math.log2(xs[-1])
            share = (math.log2(x) - low) / (high - low) if high > low else 0.5
        else:
            share = (x - xs[0]) / (xs[-1] - xs[0]) if xs[-1] > xs[0] else 0.5
        return LEFT + share * plot_w

    def fy(y: float) -> float:
        return TOP + plot_h - (y / y_top) * plot_h

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(chart.title)}">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>',
        f'<text x="{WIDTH / 2:.1f}" y="22" text-anchor="middle" font-size="15" {FONT} '
        f'font-weight="bold">{escape(chart.title)}</text>',
    ]
    for tick in y_ticks:
        y = fy(tick)
        out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + plot_w}" y2="{y:.1f}" stroke="#e5e5e5"/>')
        out.append(
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" {FONT}>'
            f"{_number(tick)}{escape(chart.y_unit)}</text>"
        )
    for tick in xs:
        x = fx(tick)
        out.append(f'<line x1="{x:.1f}" y1="{TOP + plot_h}" x2="{x:.1f}" y2="{TOP + plot_h + 4}" stroke="#333333"/>')
        out.append(
            f'<text x="{x:.1f}" y="{TOP + plot_h + 17}" text-anchor="middle" font-size="11" {FONT}>'
            f"{_number(tick)}</text>"
        )
    out.append(
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{LEFT + plot_w}" y2="{TOP + plot_h}" stroke="#333333"/>'
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}" stroke="#333333"/>'
    )
    out.append(
        f'<text x="{LEFT + plot_w / 2:.1f}" y="{HEIGHT - 12}" text-anchor="middle" font-size="12" {FONT}>'
        f"{escape(chart.x_label)}</text>"
    )
    out.append(
        f'<text x="16" y="{TOP + plot_h / 2:.1f}" text-anchor="middle" font-size="12" {FONT} '
        f'transform="rotate(-90 16 {TOP + plot_h / 2:.1f})">{escape(chart.y_label)}</text>'
    )
    legend: list[tuple[str, str, str]] = []  # (label, colour, dash attribute)
    for index, reference in enumerate(chart.references):
        y = fy(reference.y)
        dash = f' stroke-dasharray="{REFERENCE_DASHES[index % len(REFERENCE_DASHES)]}"'
        out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + plot_w}" y2="{y:.1f}" stroke="#666666"{dash}/>')
        legend.append((reference.label, "#666666", dash))
    for index, series in enumerate(chart.series):
        colour = COLOURS[index % len(COLOURS)]
        dash = ' stroke-dasharray="6 4"' if series.dashed else ""
        path = " ".join(f"{fx(x):.1f},{fy(y):.1f}" for x, y in series.points)
        out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>')
        if series.markers:
            for x, y in series.points:
                out.append(f'<circle cx="{fx(x):.1f}" cy="{fy(y):.1f}" r="3.5" fill="{colour}"/>')
        legend.insert(index, (series.name, colour, dash))
    lx = LEFT + plot_w + 12
    for index, (label, colour, dash) in enumerate(legend):
        ly = TOP + 8 + index * 18
        out.append(
            f'<line x1="{lx}" y1="{ly}" x2="{lx + 18}" y2="{ly}" stroke="{colour}" stroke-width="2"{dash}/>'
            f'<text x="{lx + 24}" y="{ly + 4}" font-size="11" {FONT}>{escape(label)}</text>'
        )
    out.append("</svg>")
    return "\n".join(out) + "\n"


# -- the performance section's charts ----------------------------------------------------------


def render(results: dict) -> dict[str, str]:
    """``{file name: SVG}`` of every chart the README's performance section embeds."""
    charts: dict[str, str] = {}
    for key, draw in (("messaging_scaling", _messaging_charts), ("portal", _portal_charts), ("plan", _plan_charts)):
        if results.get(key):
            charts.update(draw(results[key]))
    return charts


def _points(rows: list[dict], x: str, *y: str) -> list[tuple[float, float]]:
    """``(row[x], row[y[0]][y[1]]...)`` of each row of the summary: a series' points."""
    return [(row[x], reduce(operator.getitem, y, row)) for row in rows]


def _messaging_charts(messaging: dict) -> dict[str, str]:
    send, receive = messaging["send"], messaging["receive"]
    chart = Chart(
        title="Messaging on one quorum queue",
        x_label="processes",
        y_label="messages per second (total)",
        series=[
            Series("send: confirmed", _points(send, "processes", "msgs_per_s")),
            Series("receive: processed", _points(receive, "processes", "msgs_per_s")),
        ],
        x_ticks=[p["processes"] for p in send],
        log_x=True,
    )
    return {"messaging.svg": line_chart(chart)}


def _portal_charts(portal: dict) -> dict[str, str]:
    delay = portal["backend_delay_ms"]
    curve = portal["curve"]
    clients = [p["clients"] for p in curve]
    latency = Chart(
        title=f"Portal latency (backends answer after {delay} ms)",
        x_label="concurrent clients",
        y_label="milliseconds",
        series=[
            Series("page p50", _points(curve, "clients", "page", "p50_ms")),
            Series("page p99", _points(curve, "clients", "page", "p99_ms"), dashed=True),
            Series("API p50", _points(curve, "clients", "api", "p50_ms")),
            Series("API p99", _points(curve, "clients", "api", "p99_ms"), dashed=True),
        ],
        x_ticks=clients,
        log_x=True,
        references=[Reference("backend delay", delay), Reference("1.3 x delay", 1.3 * delay)],
    )
    throughput = Chart(
        title="Portal throughput",
        x_label="concurrent clients",
        y_label="requests per second",
        series=[
            Series("ideal: clients / delay", _points(curve, "clients", "ideal_rps"), dashed=True),
            Series("page", _points(curve, "clients", "page", "rps")),
            Series("API", _points(curve, "clients", "api", "rps")),
        ],
        x_ticks=clients,
        log_x=True,
    )
    return {"portal-latency.svg": line_chart(latency), "portal-throughput.svg": line_chart(throughput)}


def _plan_charts(plan: dict) -> dict[str, str]:
    points = plan["points"]
    fit = plan["cpu_fit"]
    line = [(p["services"], fit["fixed_s"] + fit["ms_per_resource"] / 1000 * p["resources"]) for p in points]
    chart = Chart(
        title="Offline plan time",
        x_label="ContainerServices in the program (plus a Network and an EcsCluster)",
        y_label="seconds",
        series=[
            Series("wall clock", _points(points, "services", "seconds")),
            Series("CPU", _points(points, "services", "cpu_seconds")),
            Series("line through CPU", line, dashed=True, markers=False),
        ],
        x_ticks=[p["services"] for p in points],
    )
    return {"plan.svg": line_chart(chart)}
