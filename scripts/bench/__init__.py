"""Benchmarks and load tests, the figures of docs/benchmarks.md: `python -m scripts.bench.NAME`
or the make targets. They start the apps with the tests' harness, tests/serving.py."""
