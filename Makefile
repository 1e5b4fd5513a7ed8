# The two commands of the README: `make up` and `make test`.
# Both create ./.venv and install sshtrail into it first; nothing else is needed.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: up test lint install openssh

$(BIN)/sshtrail: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/sshtrail

up: install
	$(BIN)/sshtrail up --demo

# The tests start a real OpenSSH sshd; install it when it is missing and we may.
openssh:
	@if [ -x /usr/sbin/sshd ] && command -v ssh >/dev/null && command -v ssh-keygen >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server openssh-client >/dev/null; \
	elif sudo -n true 2>/dev/null; then \
		sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server openssh-client >/dev/null; \
	else \
		echo "the tests need OpenSSH: sudo apt-get install openssh-server openssh-client" >&2; exit 1; \
	fi

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	@db=$$(mktemp -d)/alembic-check.db && \
		$(BIN)/alembic -x url=sqlite:///$$db upgrade head && \
		$(BIN)/alembic -x url=sqlite:///$$db check

test: install openssh lint
	$(BIN)/pytest
