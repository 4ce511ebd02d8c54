# The web UI: its benchmark (its tests run with the rest in `make test`).
# docs/benchmarks.md has the figures this prints.

.PHONY: bench-ui

bench-ui: install ## seed 100k users, 2M follows, 1M messages; p50/p99 of the UI's timelines on SQLite and MariaDB
	$(PY) -m bench.bench_ui --mariadb '$(BENCH_MARIADB_URL)'
