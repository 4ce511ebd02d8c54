"""Benchmarks and load tests: where MiniTwit's figures come from
(docs/benchmarks.md gives every figure with its command).

- bench: the course's scenario replayed against the API and the floor
- loadtest: 32 concurrent clients on both apps, beside the floor
- bench_ui, bench_import, bench_passwords: the web UI's timelines at a
  million messages, the legacy import, password hashing
- floor_app: a WSGI app that does nothing, the HTTP stack's own cost
- profile_api, stopwatch, bench_cluster: where a request's time goes, and a
  Galera cluster against one node

They start the apps with tests/serving.py (and bench_cluster its cluster
with tests/galera.py), the test suite's harness.

Run as `python -m scripts.bench.NAME`, or through the make targets.
"""
