# The two commands of the README: `make up` and `make test`.
# Both create ./.venv and install sshtrail into it first; nothing else is needed.
#
#   make up          install the runtime only, then run `sshtrail up --demo`
#   make test        the system packages the tests use, lint, type check, migration
#                    check, then the whole test suite (what CI runs)
#   make test-fast   unit tests and the in-memory-broker tests only (< 1 min)

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP_QUIET := -qq --disable-pip-version-check

# What the tests drive for real: OpenSSH (client and sshd), Debian's docker-compose
# (validates compose/), the shells and programs of the search corpus, Chromium and
# its driver (the web console's browser tests), Java and Maven (Apache Kafka's jars),
# Prometheus's promtool (checks compose/prometheus/alerts.yml).
SYSTEM_PACKAGES := openssh-server openssh-client docker-compose vim nano less chromium chromium-driver \
	openjdk-17-jre-headless maven prometheus zsh rsync
SYSTEM_COMMANDS := /usr/sbin/sshd ssh ssh-keygen docker-compose vim nano less chromium chromedriver \
	java mvn promtool zsh rsync

.PHONY: up test test-fast lint install install-test system-packages postgres kafka

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install $(PIP_QUIET) --upgrade pip

$(VENV)/.runtime: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install $(PIP_QUIET) -e .
	touch $@

$(VENV)/.test: pyproject.toml $(VENV)/.runtime
	$(BIN)/python -m pip install $(PIP_QUIET) -e '.[test]'
	touch $@

install: $(VENV)/.runtime

install-test: $(VENV)/.test

up: install
	$(BIN)/sshtrail up --demo

# Installed when missing and we may (root, or password-less sudo); otherwise say what.
system-packages:
	@missing=""; for c in $(SYSTEM_COMMANDS); do command -v $$c >/dev/null || [ -x $$c ] || missing=1; done; \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSTEM_PACKAGES) >/dev/null; \
	elif sudo -n true 2>/dev/null; then \
		sudo DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSTEM_PACKAGES) >/dev/null; \
	else \
		echo "the tests need: sudo apt-get install $(SYSTEM_PACKAGES)" >&2; exit 1; \
	fi

# PostgreSQL on 127.0.0.1:5432 with trust auth: apt-get install postgresql and start it when nothing
# answers there and we are root (tests/services/postgres.sh says what it does).
postgres:
	@bash tests/services/postgres.sh

# Apache Kafka's jars from Maven Central (tests/kafka/pom.xml), fetched once into
# ~/.cache/sshtrail/kafka-VERSION and reused: the tests start KRaft clusters from them.
kafka: install-test system-packages
	@$(BIN)/python -c "from tests.support.kafka import libs; print('Apache Kafka jars in', libs())"

lint: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	@db=$$(mktemp -d)/alembic-check.db && \
		$(BIN)/alembic -x url=sqlite:///$$db upgrade head && \
		$(BIN)/alembic -x url=sqlite:///$$db check

# More workers than cores: most tests wait on brokers, sshd and subprocesses, not the
# CPU. On 2 cores, 1,612 tests (2026-12-07): 14:25 with 4 workers, load ~16 at the
# busiest; 3 workers took 25-30 min before two fixture fixes (docs/performance.md).
# A module's tests stay on one worker (they share module fixtures: stacks, gateways,
# clusters).
TEST_WORKERS ?= 4
# --durations: the slowest tests of each run, where the suite's time goes.
test: install-test system-packages postgres kafka lint
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadscope --durations=30

# Two workers: the unit tests are CPU-bound; on 2 cores 0:53 instead of 1:21.
test-fast: install-test
	$(BIN)/pytest -m "not integration and not e2e" -q -n 2
