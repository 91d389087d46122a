"""The benchmarks say how steady the machine was, next to the ratios it moved."""

from benchmarks.common import cpu_steadiness


def test_the_slowest_and_fastest_windows_bracket_the_median():
    steadiness = cpu_steadiness(windows=5, window_s=0.05)
    assert steadiness["windows"] == 5 and steadiness["window_s"] == 0.05
    assert 0 < steadiness["slowest_vs_median"] <= 1 <= steadiness["fastest_vs_median"]
