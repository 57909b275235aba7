"""The benchmark suite: ``python -m benchmarks`` (see README.md). Not part of the package."""
