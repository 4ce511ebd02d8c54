# Every benchmark and load test: what each prints is in docs/benchmarks.md,
# with the command and the date. SCENARIO is chosen as for `make simulate`.

# The benchmarks' MariaDB: the local server through its socket, as a server
# with both roles runs it (deploy/provision.sh), else over TCP.
MARIADB_SOCKET := /run/mysqld/mysqld.sock
BENCH_MARIADB_URL ?= $(if $(wildcard $(MARIADB_SOCKET)),mysql://root@localhost?unix_socket=$(MARIADB_SOCKET),mysql://root@127.0.0.1:3306)
LOADTEST_ARGS ?=

.PHONY: bench bench-cluster bench-profile bench-passwords bench-import bench-ui loadtest

bench: install-mysql ## replay SCENARIO against the API and a no-op app, on SQLite and MariaDB
	@$(choose_scenario) \
	$(PY) -m scripts.bench.bench --scenario "$$scenario" --mariadb '$(BENCH_MARIADB_URL)'

bench-cluster: install-mysql ## SCENARIO on one MariaDB node and on a 3-node Galera cluster, sequential and 32 clients
	@$(choose_scenario) \
	$(PY) -m scripts.bench.bench_cluster --scenario "$$scenario"

bench-profile: install-mysql ## where a simulator request's time goes on MariaDB: statements, round trips, app/driver/server ms
	@$(choose_scenario) \
	$(PY) -m scripts.bench.profile_api --scenario "$$scenario"

bench-passwords: install ## what hashing and verifying a password costs (argon2id, the original's pbkdf2)
	$(PY) -m scripts.bench.bench_passwords

bench-import: install ## import a generated 1,000,000-message legacy DB into SQLite and MariaDB
	$(PY) -m scripts.bench.bench_import --mariadb '$(BENCH_MARIADB_URL)'

bench-ui: install ## seed 100k users, 2M follows, 1M messages; p50/p99 of the UI's timelines on SQLite and MariaDB
	$(PY) -m scripts.bench.bench_ui --mariadb '$(BENCH_MARIADB_URL)'

loadtest: install-mysql ## 32 clients on both apps (SQLite, then MariaDB), beside the no-op floor
	$(PY) -m scripts.bench.loadtest $(LOADTEST_ARGS)
	$(PY) -m scripts.bench.loadtest --mariadb '$(BENCH_MARIADB_URL)' $(LOADTEST_ARGS)
