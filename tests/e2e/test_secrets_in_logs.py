"""Secrets never reach a log, even at ``--log-level debug``.

The gateway, a store member and an index member run with every secret the
settings can hold (a database password, a Kafka SASL password, an operator's
password hash) while an operator logs in with a password, types a secret at
a no-echo prompt and runs a command line holding a token. Then every line
any of them wrote is searched for each secret.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import pexpect
import pytest
from sqlalchemy.engine import make_url

from sshtrail import migrate
from sshtrail.passwords import hash_password
from tests.support import postgres
from tests.support.consumers import group_lag, start_member, wait_for, write_config
from tests.support.gateway import GatewayProcess, published
from tests.support.kafka import Broker
from tests.support.services import unavailable
from tests.support.sshd import SshdTarget

pytestmark = pytest.mark.e2e

DB_PASSWORD = "Db-s3cret-4711"
SASL_PASSWORD = "Kafka-s3cret-0815"
OPERATOR_PASSWORD = "Op-s3cret-1234"
TYPED_SECRET = "Typed-s3cret-9999"
#: A token on a command line is recorded (it is what the operator did) but
#: must still never be logged.
COMMAND_TOKEN = "tok-s3cret-5555"
KAFKA_CLIENT = f'[kafka.client]\n"sasl.username" = "gw"\n"sasl.password" = "{SASL_PASSWORD}"\n'


@pytest.fixture
def database_with_password() -> Iterator[str]:
    """A PostgreSQL database whose URL holds a password (trust auth ignores it)."""
    try:
        url = postgres.create_database()
    except Exception as exc:
        unavailable(f"PostgreSQL at {postgres.ADMIN_URL} is not available: {exc}")
    yield make_url(url).set(password=DB_PASSWORD).render_as_string(hide_password=False)
    postgres.drop_database(url)


def test_no_secret_reaches_any_log_at_debug_level(
    tmp_path: Path, broker: Broker, sshd: SshdTarget, database_with_password: str
) -> None:
    migrate.upgrade(database_with_password)
    gateway = GatewayProcess(
        tmp_path / "gw",
        broker.bootstrap_servers,
        sshd,
        dead_letters=True,
        cli_options=("--log-level", "debug"),
        operator_extra=f'password_hash = "{hash_password(OPERATOR_PASSWORD)}"',
        config_tail=KAFKA_CLIENT,
    )
    gateway.start()
    config = write_config(
        tmp_path / "consumers.toml", broker.bootstrap_servers, gateway.topic, database_with_password
    )
    config.write_text(
        f'log_level = "debug"\n{config.read_text()}'
        f'[search]\nurl = "{database_with_password}"\n{KAFKA_CLIENT}'
    )
    store = start_member(config, "store")
    index = start_member(config, "index")
    try:
        _type_a_secret(gateway)
        asyncio.run(_password_login(gateway))
        published(broker.bootstrap_servers, gateway.topic, complete=2)
        for group in (f"{gateway.topic}-store", f"{gateway.topic}-index"):
            wait_for(
                lambda group=group: (
                    sum(
                        group_lag(
                            broker.bootstrap_servers,
                            group,  # type: ignore[misc]
                            gateway.topic,
                        ).values()
                    )
                    == 0
                ),
                what=f"{group} to read everything",
            )
    finally:
        gateway_log = gateway.stop()
        store_status, store_out, store_err = store.stop(signal.SIGTERM)
        index_status, index_out, index_err = index.stop(signal.SIGTERM)
    assert (store_status, index_status) == (0, 0), store_err + index_err
    target_key = sshd.client_key.read_text().splitlines()[1]  # a line of the private key
    logs = {"gateway": gateway_log, "store": store_out + store_err, "index": index_out + index_err}
    assert "authenticated" in gateway_log  # info lines were written
    assert "DEBUG" in logs["store"] + logs["index"] + gateway_log, "no debug lines"
    for name, text in logs.items():
        for secret in (
            DB_PASSWORD,
            SASL_PASSWORD,
            OPERATOR_PASSWORD,
            TYPED_SECRET,
            COMMAND_TOKEN,
            target_key,
        ):
            assert secret not in text, f"{name} logged {secret!r}"


def _type_a_secret(gateway: GatewayProcess) -> None:
    argv = gateway.ssh("alice:t1", tty=True)
    shell = pexpect.spawn(
        argv[0], argv[1:], timeout=30, dimensions=(24, 80), env={**os.environ, "TERM": "xterm"}
    )
    shell.sendline("PS1='READY> '")
    shell.expect("READY> ")
    shell.expect("READY> ")
    shell.sendline("read -s -p 'Password: ' pw; echo; echo got-${#pw}")
    shell.expect("Password: ")
    shell.sendline(TYPED_SECRET)
    shell.expect(f"got-{len(TYPED_SECRET)}")
    shell.expect("READY> ")
    shell.sendline(f"export API_TOKEN={COMMAND_TOKEN}; echo token-set")
    shell.expect("token-set")
    shell.expect("READY> ")
    shell.sendline("exit")
    shell.expect(pexpect.EOF)
    shell.close()


async def _password_login(gateway: GatewayProcess) -> None:
    async with asyncssh.connect(
        "127.0.0.1",
        gateway.port,
        username="alice:t1",
        password=OPERATOR_PASSWORD,
        client_keys=None,
        known_hosts=None,
        preferred_auth="password",
    ) as conn:
        result = await conn.run("echo by-password", check=False)
        assert result.stdout == "by-password\n"
