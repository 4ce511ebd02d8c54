# MiniTwit: the one entry point for people and CI. `make help` lists it all.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The scenario the replays and benchmarks use: SCENARIO when given; else the
# course's, from MINITWIT_DATA_DIR (a folder of the course's files) or from
# `make scenario`; else a generated one (simulator/course_data.py chooses).
SCENARIO ?=
# Where `make scenario` keeps the course's scenario, and the generated one (git-ignored).
DATA_CACHE ?= data
# Standard library only, with the system's Python: `make scenario` runs before
# .venv exists (on CircleCI, on the machine that starts the test container).
COURSE_DATA = $(PYTHON) -m simulator.course_data --cache $(DATA_CACHE)
# Runs first in a recipe that replays SCENARIO: sets the shell's $scenario, says
# which file it is. In the recipe, not $(shell): `make -n` generates nothing.
choose_scenario = scenario="$$($(COURSE_DATA) scenario '$(SCENARIO)')" &&
URL ?= http://127.0.0.1:5001
ARTIFACTS ?= artifacts
# Where the browser test leaves a screenshot of every page it visits.
SCREENSHOTS ?= $(ARTIFACTS)/screenshots
# Set to mysql://root@127.0.0.1:3306 to run the whole suite on MariaDB too.
TEST_MARIADB_URL ?=
# The suite runs in this many processes (pytest-xdist): 4 minutes, not 6, on 2 cores.
TEST_WORKERS ?= 2
# How every MiniTwit process is served: deploy/defaults.env says it for all.
WAITRESS_FLAGS := $(shell . deploy/defaults.env && echo "$$WAITRESS_FLAGS")

# DATABASE_URL, when given, reaches every command; otherwise the apps and
# tools use database.py's default, the SQLite file minitwit.db.
export DATABASE_URL TEST_MARIADB_URL

.PHONY: help install install-mysql serve test deps initdb scenario simulate

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z][a-z-]*:.*## / {printf "  make %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

install: $(VENV)/.installed ## create .venv with the pinned requirements

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements-dev.txt
	touch $@

install-mysql: $(VENV)/.installed-mysql ## add mysqlclient, the C driver MariaDB is fastest on (needs libmariadb-dev, pkg-config: make deps)

$(VENV)/.installed-mysql: $(VENV)/.installed requirements-mysql.txt
	$(VENV)/bin/pip install --quiet -r requirements-mysql.txt
	touch $@

serve: install ## run the web UI on :5000 and the API on :5001 (SQLite unless DATABASE_URL)
	@echo "web UI  http://127.0.0.1:5000   simulator API  http://127.0.0.1:5001   ($(or $(DATABASE_URL),SQLite minitwit.db))"
	@# kill 0 signals this shell too: its TERM trap, left set, would recurse.
	@trap 'trap - TERM; kill 0' EXIT INT TERM; \
	$(PY) -m serve --listen=127.0.0.1:5000 $(WAITRESS_FLAGS) minitwit:app & \
	$(PY) -m serve --listen=127.0.0.1:5001 $(WAITRESS_FLAGS) sim_api:app & \
	wait

test: install ## run the tests: SQLite, and MariaDB too with TEST_MARIADB_URL (as root: installs `make deps` first)
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  $(MAKE) --no-print-directory deps; fi
	@echo "make test: on SQLite$(if $(TEST_MARIADB_URL), and on MariaDB at $(TEST_MARIADB_URL)), $(TEST_WORKERS) processes"
	@mkdir -p $(SCREENSHOTS)
	SCREENSHOTS=$(abspath $(SCREENSHOTS)) $(PY) -m pytest -n $(TEST_WORKERS) --durations=15 $(PYTEST_ARGS)

deps: ## install the Debian packages the tests need (tests/system-packages.txt): sudo make deps
	@tests/system-packages.sh install

initdb: install ## create the tables in DATABASE_URL (they are also created on first start)
	$(PY) -m ops.initdb

scenario: ## fetch the course's scenario into data/ (checked; from MINITWIT_DATA_DIR if it has it)
	@$(COURSE_DATA) fetch

simulate: install ## replay SCENARIO against URL as the course's simulator does (--verify too)
	@$(choose_scenario) \
	$(PY) -m simulator.simulate "$$scenario" --url $(URL) --verify $(SIMULATE_ARGS)

# The benchmarks (mk/bench.mk), delivery (mk/delivery.mk) and the original's
# data (mk/legacy.mk), in mk/.
include $(wildcard mk/*.mk)
