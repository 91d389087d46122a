"""After the benchmarks: the curves in one file, the charts, and the figures the README shows.

``python -m benchmarks.report`` (the last step of ``make bench``) reads
build/bench/{messaging,messaging_scaling,portal,plan,cluster}.json and writes:

- build/bench/scaling.json: the three curves (messaging processes, portal
  clients, plan size) with the machine they ran on;
- docs/performance/results.json: the figures the README's performance section
  is generated from (committed: build/ is not, and ``make docs`` on a fresh
  clone must reproduce the README without running benchmarks);
- the charts, build/bench/*.svg and the same files under docs/performance/
  (what the README embeds), rendered from that summary by benchmarks.charts.

Then run ``make docs`` to regenerate the README's section from the summary.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from benchmarks import charts
from benchmarks.common import BENCH_DIR, RATIOS, load_previous, now_utc, shown
from devtools.procs import REPO_ROOT

DOCS_DIR = REPO_ROOT / "docs" / "performance"
RESULTS = DOCS_DIR / "results.json"
MESSAGING_KEYS = (
    "finished_at",
    "seed_style_msgs_per_s",
    "fire_and_forget_msgs_per_s",
    "send_msgs_per_s",
    "auto_ack_msgs_per_s",
    "receive_msgs_per_s",
    "send_vs_fire_and_forget",
    "send_vs_seed_style",
    "receive_vs_auto_ack",
    "lost",
    "fire_and_forget_lost",
    "messages",
    "seed_style_messages",
    "rounds",
    "queue_type",
    "rabbitmq",
    "settings",
    "series",
    "series_spread",
    "previous_run",
    "spread_vs_previous",
    "previous_run_other_broker",
    "cpu_us_per_msg",
    "load_average_before",
    "cpu_steadiness",
    "targets_met",
)
CLUSTER_KEYS = (
    "single_node_msgs_per_s",
    "cluster_msgs_per_s",
    "cluster_vs_single",
    "messages",
    "rounds",
    "lost",
    "duplicates",
    "failover_s",
    "failover_rate_msgs_per_s",
    "targets_met",
)


def summary(bench_dir: Path) -> dict:
    """The README's figures from the benchmark reports (a part is left out when its report is missing)."""
    reports = {name: load_previous(bench_dir / f"{name}.json") for name in ("messaging", "messaging_scaling")}
    reports |= {name: load_previous(bench_dir / f"{name}.json") for name in ("portal", "plan", "cluster")}
    present = {name: report for name, report in reports.items() if report}
    if not present:
        raise SystemExit(f"no benchmark reports in {shown(bench_dir)}: run `make bench`")
    machine = next(report["machine"] for report in present.values() if "machine" in report)
    results: dict = {"generated_at": now_utc(), "machine": machine}
    if reports["messaging"]:
        messaging = reports["messaging"]
        results["messaging"] = {key: messaging.get(key) for key in MESSAGING_KEYS}
        per_round = messaging.get("per_round") or {}
        results["messaging"]["ratio_ranges"] = {
            name: [min(per_round[name]), max(per_round[name])] for name in RATIOS if per_round.get(name)
        }
    if reports["messaging_scaling"]:
        scaling = reports["messaging_scaling"]
        results["messaging_scaling"] = {key: scaling[key] for key in ("queue_type", "window_s", "send", "receive")}
    if reports["portal"]:
        portal = dict(reports["portal"])
        portal.pop("machine", None)
        for point in portal["curve"]:
            for name in ("page", "api"):
                point[name].pop("first_errors", None)
        portal["backend_direct"].pop("first_errors", None)
        results["portal"] = portal
    if reports["plan"]:
        plan = dict(reports["plan"])
        plan.pop("machine", None)
        results["plan"] = plan
    if reports["cluster"]:
        cluster = reports["cluster"]
        results["cluster"] = {key: cluster.get(key) for key in CLUSTER_KEYS}
    return results


def load_results() -> dict | None:
    """The committed figures (docs/performance/results.json), or None before the first ``make bench``."""
    return load_previous(RESULTS)


def scaling(results: dict) -> dict:
    """build/bench/scaling.json: the three curves."""
    out: dict = {"machine": results["machine"]}
    if "messaging_scaling" in results:
        out["messaging"] = results["messaging_scaling"]
    if "portal" in results:
        portal = results["portal"]
        out["portal"] = {
            "backend_delay_ms": portal["backend_delay_ms"],
            "points": [
                {
                    "clients": point["clients"],
                    "ideal_rps": point["ideal_rps"],
                    **{
                        name: {key: point[name][key] for key in ("rps", "share_of_ideal", "p50_ms", "p99_ms", "errors")}
                        for name in ("page", "api")
                    },
                }
                for point in portal["curve"]
            ],
        }
    if "plan" in results:
        plan = results["plan"]
        keys = ("program", "points", "fit", "cpu_fit", "per_resource_growth", "cpu_per_resource_growth")
        out["plan"] = {key: plan[key] for key in keys}
    return out


def write_charts(results: dict, *directories: Path) -> list[Path]:
    written = []
    for name, svg in charts.render(results).items():
        for directory in directories:
            directory.mkdir(parents=True, exist_ok=True)
            (directory / name).write_text(svg)
            written.append(directory / name)
    return written


def main(argv: list[str] | None = None) -> int:
    results = summary(BENCH_DIR)
    (BENCH_DIR / "scaling.json").write_text(json.dumps(scaling(results), indent=2) + "\n")
    DOCS_DIR.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    written = write_charts(results, BENCH_DIR, DOCS_DIR)
    print(f"written: {shown(BENCH_DIR / 'scaling.json')}, {shown(RESULTS)}")
    print(f"charts: {', '.join(shown(path) for path in written)}")
    print("run `make docs` to regenerate the README's performance section from these figures")
    return 0


if __name__ == "__main__":
    sys.exit(main())


# -- the README's performance section ---------------------------------------------------------

CHARTS_URL = "docs/performance"


def markdown(results: dict | None) -> str:
    """The README's performance section (between its markers), from ``docs/performance/results.json``."""
    if not results:
        return "No figures yet: run `make bench`, then `make docs`."
    parts = [_machine_line(results)]
    for key, build in (
        ("messaging", _single_node),
        ("messaging_scaling", _messaging_curve),
        ("portal", _portal),
        ("plan", _plan),
        ("cluster", _cluster),
    ):
        if results.get(key):
            parts.append(build(results[key], results))
    return "\n\n".join(parts)


def _rate(value: float) -> str:
    """A rate to three significant figures, with thousands separators (figures move by a few %)."""
    if value >= 100:
        digits = len(str(int(value))) - 3
        return f"{round(value, -digits):,.0f}"
    return f"{value:.3g}"


def _pct(value: float) -> str:
    return f"{value * 100:.1f} %"


def _met(met: bool) -> str:
    return "met" if met else "**missed**"


def _machine_line(results: dict) -> str:
    machine = results["machine"]
    rabbitmq = (results.get("messaging") or {}).get("rabbitmq")
    return (
        f"Measured by `make bench` on {results['generated_at'][:10]}: {machine['cpu']}, {machine['cpus']} CPUs, "
        f"{machine['memory_gib']} GiB, {machine['os']}, Python {machine['python']}"
        + (f", RabbitMQ {rabbitmq}" if rabbitmq else "")
        + ". Broker, apps and load generators share the machine and talk over loopback. This section is "
        "generated (`make docs`) from `docs/performance/results.json`, which `make bench` writes with the charts "
        "next to it; nothing here is typed by hand."
    )


def _single_node(m: dict, results: dict) -> str:
    settings = m["settings"]
    cpu = m["cpu_us_per_msg"]
    met = m["targets_met"]
    ack_every = settings["receive_ack_every"] or f"{settings['receive_prefetch'] // 4} (a quarter of the prefetch)"
    load = m.get("load_average_before")

    def costs(key: str) -> str:
        return f"{cpu['client'][key]:.0f} / {cpu['broker'][key]:.0f}"

    rows = [
        "| Messaging | msg/s | Ratio | CPU µs per message: client / broker |",
        "| --- | ---: | --- | --- |",
        f"| (a) the original `send.py` style (a connection per message) | {_rate(m['seed_style_msgs_per_s'])} "
        "| baseline | |",
        f"| (b) fire-and-forget on one connection (no confirms) | {_rate(m['fire_and_forget_msgs_per_s'])} "
        f"| baseline | {costs('b')} |",
        f"| (c) `apps.send`: persistent, publisher confirms, window {settings['send_window']} "
        f"| {_rate(m['send_msgs_per_s'])} | **{m['send_vs_fire_and_forget']:.3f} x** (b), target >= "
        f"0.9: {_met(met['send_vs_fire_and_forget'])}; {m['send_vs_seed_style']:,.0f} x the original | {costs('c')} |",
        f"| (d) auto-ack consumer | {_rate(m['auto_ack_msgs_per_s'])} | baseline | {costs('d')} |",
        f"| (e) `apps.receive`: prefetch {settings['receive_prefetch']}, manual acks after processing, "
        f"ids recorded and flushed before their ack | {_rate(m['receive_msgs_per_s'])} | "
        f"**{m['receive_vs_auto_ack']:.3f} x** (d), target >= 0.85: {_met(met['receive_vs_auto_ack'])} "
        f"| {costs('e')} |",
    ]
    set_by = settings.get("set_by_benchmark") or {}
    defaults = settings.get("app_defaults") or {}
    tuning = "".join(
        f" `make bench` runs the apps with `{name}={value}`"
        + (f" (the app's default is {defaults['receive_prefetch']})" if name == "RECEIVE_PREFETCH" and defaults else "")
        + "."
        for name, value in set_by.items()
    )
    pinned = (
        " The broker nodes run on one core (one Erlang scheduler each) and the benchmark's clients on another: "
        "deployed, the broker has a machine of its own."
        if settings.get("pinned")
        else ""
    )
    publish_slice, drain_slice = settings.get("publish_slice_s"), settings.get("drain_slice_s")
    publishing = (
        f"a round publishes in two pairs, (b) with (c) and (c) with (b), {m['messages']:,} messages per run, each "
        f"to its own {m['queue_type']} queue on a broker node of its own, the two runs of a pair taking turns on "
        f"the whole machine every {publish_slice * 1000:g} ms (the other run's client and broker node stopped "
        "meanwhile)"
        if publish_slice
        else f"a round publishes (b) (c) (c) (b), {m['messages']:,} messages per run, each to its own "
        f"{m['queue_type']} queue"
    )
    drains = (
        f"then it drains them in two pairs, (d) with (e) and (e) with (d), taking turns on the client core every "
        f"{drain_slice * 1000:g} ms"
        if drain_slice
        else "then drains them (d) (e) (e) (d)"
    )
    turns = (
        " Each run is timed over its own turns: this machine's core speed changes within a second, and so the two "
        "runs of a pair see the same machine."
        if publish_slice and drain_slice
        else ""
    )
    lines = [
        "#### One node: what the guarantees cost",
        f"{m['rounds']} rounds; {publishing}; {drains}; a ratio is the median of the rounds' ratios.{turns} "
        f"apps.receive acks after {ack_every} messages at most.{tuning}{pinned}"
        + (
            f" The machine's load average was {load:.1f} just before the benchmark started its brokers (other work "
            "shared the machine)."
            if load is not None
            else ""
        ),
        "\n".join(rows),
        f"Lost: {m['lost']} of the messages `apps.send` had confirmed "
        f"({'target 0: met' if met['lost'] else 'target 0: **missed**'}).",
        _broker_bound(m),
    ]
    spreads = []
    if m.get("series_spread"):
        series = m["series"]
        spreads.append(
            "the even and the odd rounds, as two series, give "
            f"{series['even_rounds']['send_vs_fire_and_forget']:.3f} and "
            f"{series['odd_rounds']['send_vs_fire_and_forget']:.3f} for send "
            f"({_pct(m['series_spread']['send_vs_fire_and_forget'])} apart), "
            f"{series['even_rounds']['receive_vs_auto_ack']:.3f} and "
            f"{series['odd_rounds']['receive_vs_auto_ack']:.3f} for receive "
            f"({_pct(m['series_spread']['receive_vs_auto_ack'])} apart)"
        )
    if m.get("spread_vs_previous"):
        previous = m["previous_run"]
        agrees = met.get("agrees_with_previous_run")
        spreads.append(
            f"the run before this one ({previous['finished_at'][:16].replace('T', ' ')} UTC) gave "
            f"{previous['send_vs_fire_and_forget']:.3f} and {previous['receive_vs_auto_ack']:.3f} "
            f"({_pct(m['spread_vs_previous']['send_vs_fire_and_forget'])} and "
            f"{_pct(m['spread_vs_previous']['receive_vs_auto_ack'])} apart: "
            f"{'within' if agrees else '**not** within'} 5 %)"
        )
    if m.get("previous_run_other_broker"):
        spreads.append(f"the run before this one ran RabbitMQ {m['previous_run_other_broker']}: not compared")
    steady = m.get("cpu_steadiness")
    if steady:
        spreads.append(
            f"the machine itself: over {steady['windows']} one-second windows just before the rounds, a fixed "
            f"CPU-bound loop on the clients' core ran at {steady['slowest_vs_median']:.2f} to "
            f"{steady['fastest_vs_median']:.2f} x its median speed, which moves the ratio of runs made one after the "
            "other by as much, and that of runs taking turns much less"
        )
    if spreads:
        lines.append("How far the ratios move: " + "; ".join(spreads) + ".")
    return "\n\n".join(lines)


def _broker_bound(m: dict) -> str:
    """What the broker's own cost of confirms allows (c), and how far the rounds' ratios ranged."""
    broker = m["cpu_us_per_msg"]["broker"]
    text = (
        f"Per confirmed message the broker spent {broker['c']:.0f} µs of CPU, against {broker['b']:.0f} for "
        f"fire-and-forget ({_pct(broker['c'] / broker['b'] - 1)} more): by that alone, where its core is the only "
        f"limit, (c) reaches about {broker['b'] / broker['c']:.2f} x (b)."
    )
    ranges = m.get("ratio_ranges") or {}
    if len(ranges) == len(RATIOS):
        (send_low, send_high), (receive_low, receive_high) = (ranges[name] for name in RATIOS)
        text += (
            f" The rounds' ratios ranged from {send_low:.3f} to {send_high:.3f} for send and from {receive_low:.3f}"
            f" to {receive_high:.3f} for receive."
        )
    return text


def _messaging_curve(s: dict, results: dict) -> str:
    send = {p["processes"]: p for p in s["send"]}
    receive = {p["processes"]: p for p in s["receive"]}
    counts = sorted(send)
    rows = [
        "| Processes | send: confirmed msg/s (total) | broker / apps CPU, cores | receive: processed msg/s (total) "
        "| broker / apps CPU, cores |",
        "| ---: | ---: | --- | ---: | --- |",
    ]
    for n in counts:
        a, b = send[n], receive.get(n)
        row = f"| {n} | {_rate(a['msgs_per_s'])} | {a['broker_cores']:.2f} / {a['apps_cores']:.2f} |"
        row += f" {_rate(b['msgs_per_s'])} | {b['broker_cores']:.2f} / {b['apps_cores']:.2f} |" if b else " | |"
        rows.append(row)
    first, last = counts[0], counts[-1]
    cores = results["machine"]["cpus"]
    growth = (
        f"{last} senders confirm {send[last]['msgs_per_s'] / send[first]['msgs_per_s']:.2f} x what {first} does"
        + (
            f", {last} receivers process {receive[last]['msgs_per_s'] / receive[first]['msgs_per_s']:.2f} x"
            if first in receive and last in receive
            else ""
        )
        + f"; the CPU columns say which side uses the machine's {cores} cores."
    )
    return "\n\n".join(
        [
            "#### Messaging: more processes on one queue",
            f"![Messaging throughput with 1, 2 and 4 processes]({CHARTS_URL}/messaging.svg)",
            f"`python -m apps.send` and `python -m apps.receive` processes on one {s['queue_type']} queue, each point "
            f"measured over {s['window_s']:g} s in steady state from the apps' own progress records.",
            "\n".join(rows),
            growth[0].upper() + growth[1:],
        ]
    )


def _portal(p: dict, results: dict) -> str:
    delay = p["backend_delay_ms"]
    rows = [
        "| Clients | page: req/s (share of ideal) | page p50 / p99, ms | page CPU, ms: portal / backends / "
        "load generator | API: req/s (share of ideal) | API p50 / p99, ms | errors |",
        "| ---: | --- | --- | --- | --- | --- | ---: |",
    ]
    for point in p["curve"]:
        page, api = point["page"], point["api"]
        cpu = page.get("cpu_ms_per_request") or {}
        costs = " / ".join(f"{cpu[key]:.1f}" for key in ("portal", "backends", "load_generator") if key in cpu)
        rows.append(
            f"| {point['clients']} | {page['rps']:,.0f} ({_pct(page['share_of_ideal'])}) "
            f"| {page['p50_ms']:.0f} / {page['p99_ms']:.0f} | {costs} "
            f"| {api['rps']:,.0f} ({_pct(api['share_of_ideal'])}) "
            f"| {api['p50_ms']:.0f} / {api['p99_ms']:.0f} | {page['errors'] + api['errors']} |"
        )
    target = next((point for point in p["curve"] if point["clients"] == 128), None)
    verdicts = []
    if target is not None:
        for name, label in (("page", "the page"), ("api", "the API")):
            figures = target[name]
            verdicts.append(
                f"{label} p50 is {figures['p50_ms']:.0f} ms, {figures['p50_vs_delay']:.2f} x the delay "
                f"({_met(figures['p50_ms'] <= 1.3 * delay)})"
            )
    errors = sum(point[name]["errors"] for point in p["curve"] for name in ("page", "api"))
    budget = ""
    if target is not None and target["page"].get("cpu_ms_per_request"):
        total = sum(target["page"]["cpu_ms_per_request"].values())
        cores = results["machine"]["cpus"]
        budget = (
            f" At 128 clients a page costs {total:.1f} ms of CPU in all (portal, both backend calls, load "
            f"generator): {cores} cores serve at most about {cores * 1000 / total:,.0f} pages/s, while a p50 of "
            f"1.3 x the delay with 128 clients needs about {128 / (1.3 * delay / 1000):,.0f} "
            "(clients / latency)."
        )
    return "\n\n".join(
        [
            "#### Portal: more concurrent clients",
            f"![Portal latency with 8, 32 and 128 clients]({CHARTS_URL}/portal-latency.svg) "
            f"![Portal throughput]({CHARTS_URL}/portal-throughput.svg)",
            f"Both backends answer after {delay} ms (measured directly: p50 {p['backend_direct']['p50_ms']:.0f} ms). "
            f"A page asks each backend once, both at the same time; the API makes one backend call. Each client "
            f"keeps a keep-alive connection and sends its next request when the answer arrives; each point is "
            f"{p['seconds_per_point']:g} s. The ideal is clients / delay. The portal runs {p['portal_workers']} "
            f"gunicorn workers x {p['portal_threads']} threads, each backend {p['backend_workers']} x "
            f"{p['backend_threads']}.",
            "\n".join(rows),
            (f"Target at 128 clients, p50 <= 1.3 x the delay: {'; '.join(verdicts)}. " if verdicts else "")
            + f"Errors: {errors} ({_met(errors == 0)})."
            + budget,
        ]
    )


def _plan(p: dict, results: dict) -> str:
    rows = [
        "| ContainerServices | resources | seconds | ms per resource | CPU seconds | CPU ms per resource |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for point in p["points"]:
        rows.append(
            f"| {point['services']} | {point['resources']} | {point['seconds']:.2f} | {point['ms_per_resource']:.1f} "
            f"| {point['cpu_seconds']:.2f} | {point['cpu_ms_per_resource']:.1f} |"
        )
    fit = p["cpu_fit"]
    first, last = p["points"][0], p["points"][-1]
    return "\n\n".join(
        [
            "#### Offline plan: bigger programs",
            f"![Offline plan time by program size]({CHARTS_URL}/plan.svg)",
            f"A program of a `Network`, an `EcsCluster` and N `ContainerService`s planned with "
            f"`seaport.tools.testing.run` (what `make plan` and unit tests do), median of {p['repeat']} plans, each "
            "size in a fresh process after a warm-up plan. CPU seconds are the planning process's own, which other "
            "work on the machine disturbs less than the clock.",
            "\n".join(rows),
            f"Least-squares line through the CPU times: {fit['fixed_s']:.2f} s + {fit['ms_per_resource']:.1f} ms per "
            f"resource. A resource costs {p['cpu_per_resource_growth']:.2f} x as much CPU at {last['services']} "
            f"services as at {first['services']} ({p['per_resource_growth']:.2f} x by the clock; 1.00 would be "
            "exactly linear).",
        ]
    )


def _cluster(c: dict, results: dict) -> str:
    met = c.get("targets_met") or {}
    return "\n\n".join(
        [
            "#### Three-node cluster",
            "| Quorum queue | `apps.send` msg/s |\n| --- | ---: |\n"
            f"| one node, one replica | {_rate(c['single_node_msgs_per_s'])} |\n"
            f"| three nodes, three replicas (confirmed by a majority) | {_rate(c['cluster_msgs_per_s'])} "
            f"({c['cluster_vs_single']:.2f} x) |",
            f"Median of {c['rounds']} rounds of {c['messages']:,} messages, every node limited to one Erlang "
            f"scheduler. Publishing at {c['failover_rate_msgs_per_s']:,.0f} msg/s, SIGKILL of the publisher's node: "
            f"first confirm through another node after {c['failover_s']:.2f} s (target < 10 s: "
            f"{_met(met.get('failover_s', False))}); lost {c['lost']} (target 0: {_met(met.get('lost', False))}), "
            f"{c['duplicates']} duplicates (at-least-once).",
        ]
    )
