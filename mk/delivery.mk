# Delivery: the tarball servers run, deploys and rollbacks over SSH, weekly
# releases, and the checks `make lint` runs. docs/deploying.md explains them.

DIST_DIR ?= dist
DIST_VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null)
DIST_REVISION ?= $(shell git rev-parse HEAD 2>/dev/null)
DIST_TARBALL = $(DIST_DIR)/minitwit-$(DIST_VERSION).tar.gz
# What a server needs: the apps and their modules, the schema, the pinned
# requirements, deploy/ (scripts, units, nginx) and the operators' tools (ops/).
DIST_FILES = $(wildcard *.py openapi.json) schema.sql requirements.txt requirements-mysql.txt database deploy ops $(wildcard views static)
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
