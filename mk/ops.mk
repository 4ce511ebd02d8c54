# Operations: the load test. Metrics, logs and monitoring/ are described in
# README's "Operating MiniTwit".

LOADTEST_ARGS ?=

.PHONY: loadtest

loadtest: install ## 32 clients on both apps (SQLite, then MariaDB), beside the no-op floor
	$(PY) scripts/loadtest.py $(LOADTEST_ARGS)
	$(PY) scripts/loadtest.py --mariadb $(BENCH_MARIADB_URL) $(LOADTEST_ARGS)
