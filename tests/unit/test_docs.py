"""The README's generated sections and Pulumi.yaml's defaults match the code (they can't drift)."""

from devtools import readme


def test_readme_generated_sections_are_current():
    current = readme.README.read_text()
    assert readme.render(current) == current, "README.md is out of date: run `make docs`"


def test_pulumi_yaml_defaults_are_the_components_defaults():
    current = readme.PROJECT.read_text()
    assert readme.project_defaults(current) == current, "Pulumi.yaml defaults are out of date: run `make docs`"


def test_settings_table_lists_every_key_with_dev_and_prod_values():
    table = readme.settings_table()
    import settings

    for key in settings.schema():
        assert f"| `{key}` |" in table
    assert "| `scalingMode` | string | `target-tracking` | `step` | `target-tracking` |" in table


def test_the_readme_python_example_runs():
    """The snippet under "Using the components" is a program: run it under the mocks."""
    import re

    from seaport.tools.testing import run

    (snippet,) = re.findall(r"```python\n(# your_project/__main__\.py\n.*?)```", readme.README.read_text(), re.S)
    plan = run(lambda: exec(compile(snippet, "README.md", "exec"), {}))  # noqa: S102 - our own README
    assert plan.of_type("aws:ecs/service:Service") and plan.of_type("aws:lb/loadBalancer:LoadBalancer")


def test_performance_charts_are_rendered_from_the_committed_figures():
    """docs/performance/*.svg (embedded in the README) are what docs/performance/results.json renders to."""
    assert readme.stale_charts() == [], "docs/performance charts are out of date: run `make docs`"


def test_performance_section_shows_the_committed_figures_and_targets():
    from benchmarks import report

    results = report.load_results()
    assert results is not None, "docs/performance/results.json is missing: run `make bench`"
    section = report.markdown(results)
    messaging = results["messaging"]
    assert f"**{messaging['send_vs_fire_and_forget']:.3f} x**" in section
    assert f"**{messaging['receive_vs_auto_ack']:.3f} x**" in section
    assert results["machine"]["cpu"] in section
    broker = messaging["cpu_us_per_msg"]["broker"]  # what the broker's cost of confirms leaves send
    assert f"(c) reaches about {broker['b'] / broker['c']:.2f} x (b)" in section
    low, high = messaging["ratio_ranges"]["send_vs_fire_and_forget"]
    assert f"ranged from {low:.3f} to {high:.3f} for send" in section
    for name in ("messaging.svg", "portal-latency.svg", "portal-throughput.svg", "plan.svg"):
        assert f"(docs/performance/{name})" in section


def test_the_summary_keeps_how_far_the_rounds_ratios_ranged(tmp_path):
    import json

    from benchmarks import report

    per_round = {"send_vs_fire_and_forget": [0.9, 0.8, 1.01], "receive_vs_auto_ack": [0.88, 0.86], "b": [1.0]}
    (tmp_path / "messaging.json").write_text(json.dumps({"machine": {"cpu": "x"}, "per_round": per_round}))
    ranges = report.summary(tmp_path)["messaging"]["ratio_ranges"]
    assert ranges == {"send_vs_fire_and_forget": [0.8, 1.01], "receive_vs_auto_ack": [0.86, 0.88]}


def test_charts_are_deterministic_svg_with_nice_ticks():
    from xml.etree import ElementTree

    from benchmarks.charts import Chart, Reference, Series, line_chart, nice_ticks

    assert nice_ticks(23_400) == [0, 5000, 10000, 15000, 20000, 25000]
    assert nice_ticks(0.9) == [0, 0.2, 0.4, 0.6, 0.8, 1.0]
    chart = Chart(
        "t <&>", "x", "y", [Series("a", [(1, 10.0), (4, 20.0)])], [1, 2, 4], log_x=True, references=[Reference("r", 5)]
    )
    svg = line_chart(chart)
    assert svg == line_chart(chart)
    root = ElementTree.fromstring(svg)  # noqa: S314 - our own output
    assert root.tag.endswith("svg") and "t &lt;&amp;&gt;" in svg


def test_plan_benchmark_fits_a_line_through_its_points():
    from benchmarks.plan import fit

    fixed, per_resource = fit([{"resources": r, "seconds": 0.5 + 0.01 * r} for r in (96, 376, 726)])
    assert round(fixed, 6) == 0.5 and round(per_resource, 6) == 0.01
