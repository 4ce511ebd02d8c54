# Operations: the load test. Metrics, logs and monitoring/ are described in
# docs/operating.md; the figures are in docs/benchmarks.md.

LOADTEST_ARGS ?=

.PHONY: loadtest

loadtest: install-mysql ## 32 clients on both apps (SQLite, then MariaDB), beside the no-op floor
	$(PY) -m bench.loadtest $(LOADTEST_ARGS)
	$(PY) -m bench.loadtest --mariadb '$(BENCH_MARIADB_URL)' $(LOADTEST_ARGS)
