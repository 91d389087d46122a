"""`make bench`: throughput/latency measurements written to build/bench/*.json.

Each benchmark measures a baseline in the same run and prints ratios against it.
"""
