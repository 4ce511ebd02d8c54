# MiniTwit: the one entry point for people and CI. `make help` lists it all.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The scenario the replays and benchmarks use: SCENARIO when given; else the
# course's, from MINITWIT_DATA_DIR (a folder of the course's files) or from
# `make scenario`; else a generated one (scripts/simulator/course_data.py chooses).
SCENARIO ?=
# Where `make scenario` keeps the course's scenario, and the generated one (git-ignored).
DATA_CACHE ?= data
# Standard library only, with the system's Python: `make scenario` runs before
# .venv exists (on CircleCI, on the machine that starts the test container).
COURSE_DATA = $(PYTHON) -m scripts.simulator.course_data --cache $(DATA_CACHE)
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

# The pinned requirements are pyproject.toml's dependency groups: app, mysql,
# and dev (app, the tests and the linters). pip >= 25.1 installs a group.
install: $(VENV)/.installed ## create .venv with the pinned requirements (pyproject.toml's dev group)

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet --group dev
	touch $@

install-mysql: $(VENV)/.installed-mysql ## add mysqlclient, the C driver MariaDB is fastest on (needs libmariadb-dev, pkg-config: make deps)

$(VENV)/.installed-mysql: $(VENV)/.installed pyproject.toml
	$(VENV)/bin/pip install --quiet --group mysql
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
	$(PY) -m scripts.ops.initdb

scenario: ## fetch the course's scenario into data/ (checked; from MINITWIT_DATA_DIR if it has it)
	@$(COURSE_DATA) fetch

simulate: install ## replay SCENARIO against URL as the course's simulator does (--verify too)
	@$(choose_scenario) \
	$(PY) -m scripts.simulator.simulate "$$scenario" --url $(URL) --verify $(SIMULATE_ARGS)

# Taking over the original ITU-MiniTwit: moderation and the import of its data.

# The original's database: LEGACY when given, else the course's dump in
# MINITWIT_DATA_DIR; with neither, a one-line error says so.
LEGACY ?=

.PHONY: flag import-legacy

flag: install ## flag messages IDS="1 2" (IDS="--unflag 1 2" undoes, IDS=-i lists all)
	$(PY) -m scripts.ops.flag_tool $(IDS)

import-legacy: install ## copy the original's database LEGACY (.db or .sql dump) into DATABASE_URL
	@legacy="$$($(COURSE_DATA) legacy '$(LEGACY)')" && \
	$(PY) -m scripts.ops.import_legacy "$$legacy" $(IMPORT_ARGS)

# Delivery: the tarball servers run, deploys and rollbacks over SSH, weekly
# releases, and the checks `make lint` runs. docs/deploying.md explains them.

DIST_DIR ?= dist
DIST_VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null)
DIST_REVISION ?= $(shell git rev-parse HEAD 2>/dev/null)
DIST_TARBALL = $(DIST_DIR)/minitwit-$(DIST_VERSION).tar.gz
# What a server needs: the apps and their modules, the schema, the pinned
# requirements (pyproject.toml), deploy/ (scripts, units, nginx) and the
# operators' tools (scripts/ops/).
DIST_FILES = $(wildcard *.py openapi.json) schema.sql pyproject.toml database deploy scripts/__init__.py scripts/ops $(wildcard views static)
# Servers to deploy to: [user@]host or ssh://[user@]host[:port][/path] (deploy.sh).
DEPLOY_HOSTS ?=

.PHONY: dist deploy rollback release lint lint-python lint-shell lint-ci lint-vagrant lint-units

dist: ## a versioned tarball of the app for servers, in dist/ (no tests, no caches)
	@test -n "$(DIST_VERSION)" -a -n "$(DIST_REVISION)" || \
	  { echo "dist: not a git checkout: give DIST_VERSION and DIST_REVISION" >&2; exit 1; }
	@rm -rf $(DIST_DIR)/.meta && mkdir -p $(DIST_DIR)/.meta
	@echo "$(DIST_VERSION)" > $(DIST_DIR)/.meta/VERSION
	@echo "$(DIST_REVISION)" > $(DIST_DIR)/.meta/REVISION
	@set -o pipefail; \
	tar --create --sort=name --owner=0 --group=0 --numeric-owner --mode=go-w \
	  --exclude=__pycache__ --exclude='*.pyc' \
	  --transform='s,^,minitwit-$(DIST_VERSION)/,S' \
	  $(DIST_FILES) -C $(DIST_DIR)/.meta VERSION REVISION \
	  | gzip -9n > $(DIST_TARBALL).tmp
	@mv $(DIST_TARBALL).tmp $(DIST_TARBALL) && rm -rf $(DIST_DIR)/.meta
	@echo "$(DIST_TARBALL)"

deploy: dist ## deploy the tarball to DEPLOY_HOSTS, one at a time (deploy.sh: SSH_PORT, SSH_KEY, KEEP...)
	@test -n "$(DEPLOY_HOSTS)" || { echo "deploy: set DEPLOY_HOSTS" >&2; exit 1; }
	TARBALL=$(DIST_TARBALL) ./deploy.sh $(DEPLOY_HOSTS)

rollback: ## put DEPLOY_HOSTS back on the release they ran before
	@test -n "$(DEPLOY_HOSTS)" || { echo "rollback: set DEPLOY_HOSTS" >&2; exit 1; }
	./deploy.sh --rollback $(DEPLOY_HOSTS)

release: ## tag the commit in production vYYYY.WW, publish a GitHub release (GITHUB_TOKEN)
	deploy/release.sh

# Every check runs (-k), so that one failure does not hide the others.
lint: ## ruff, shellcheck, and the CircleCI, Vagrant and systemd checks
	@$(MAKE) --no-print-directory -k lint-python lint-shell lint-ci lint-vagrant lint-units

lint-python: install
	$(VENV)/bin/ruff check .

# Every shell script: *.sh and whatever starts with a sh or bash #! line.
lint-shell:
	@scripts=$$(find . \( -name .git -o -name .venv -o -name dist -o -name .vagrant \
	    -o -name '*cache*' -o -name node_modules \) -prune -o -type f \
	    \( -name '*.sh' -o -exec awk 'FNR == 1 && /^#!.*[\/ ](ba|da)?sh( |$$)/ { found = 1 } { exit !found }' {} \; \) \
	    -print | sort); \
	echo shellcheck -x $$scripts; shellcheck -x $$scripts

lint-ci: install
	$(VENV)/bin/check-jsonschema --builtin-schema vendor.circle-ci .circleci/config.yml

# Offline: validate reads the Vagrantfile only (its .vagrant/ goes to a
# temporary folder); the providers' own settings are skipped.
lint-vagrant:
	ruby -c Vagrantfile
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	VAGRANT_CHECKPOINT_DISABLE=1 VAGRANT_DOTFILE_PATH="$$tmp" vagrant validate --ignore-provider

# The units as deploy/slot installs them, for a root whose slots are this
# checkout, so that every path they name exists. verify only warns about
# most mistakes: any output fails.
lint-units:
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	mkdir "$$tmp/slots" && ln -s "$(CURDIR)" "$$tmp/slots/blue" && ln -s "$(CURDIR)" "$$tmp/slots/green" && \
	DEPLOY_ROOT="$$tmp" deploy/slot install-units "$$tmp/units" >/dev/null && \
	out=$$(systemd-analyze verify --man=no "$$tmp"/units/minitwit-{web,api}@{blue,green}.service 2>&1); \
	if [ -n "$$out" ]; then echo "$$out"; exit 1; fi; \
	echo "systemd-analyze verify: minitwit-web@ and minitwit-api@ (blue, green) ok"

# Every benchmark and load test, in one place.
include scripts/bench/bench.mk
