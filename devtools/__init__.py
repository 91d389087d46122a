"""Developer tooling: local process runners used by `make local`, the tests and the benchmarks.

Not part of any image and not part of the `components` distribution.
"""
