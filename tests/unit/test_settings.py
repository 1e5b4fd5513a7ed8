"""Settings: defaults that need no file, and errors that name the key and its source."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sshtrail.errors import ConfigError
from sshtrail.settings import load_settings


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sshtrail.toml"
    path.write_text(text)
    return path


def test_defaults_need_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(environ={})
    assert settings.embedded_broker
    assert settings.bootstrap_servers == "127.0.0.1:9092"
    assert settings.database_url == "sqlite:///sshtrail-data/sshtrail.db"
    assert settings.broker_data_dir == Path("sshtrail-data/broker")
    assert settings.kafka.topic == "sshtrail.sessions"
    assert settings.kafka.dlq_topic == "sshtrail.sessions.dlq"


def test_file_then_environment(tmp_path: Path) -> None:
    path = write(tmp_path, '[kafka]\nbootstrap_servers = "k1:9092,k2:9092"\npartitions = 3\n')
    settings = load_settings(path, environ={"SSHTRAIL_KAFKA__PARTITIONS": "12"})
    assert settings.kafka.partitions == 12
    assert settings.bootstrap_servers == "k1:9092,k2:9092"
    assert not settings.embedded_broker


def test_the_loader_knows_nothing_of_the_test_suite() -> None:
    # The suite takes its SSHTRAIL_TEST_* knobs out of the environment itself
    # (tests/support/knobs.py); to the loader they are unknown keys like any other.
    assert not any(name.startswith("SSHTRAIL_TEST_") for name in os.environ)
    with pytest.raises(ConfigError, match="test_postgres: unknown key"):
        load_settings(environ={"SSHTRAIL_TEST_POSTGRES": "postgresql://x/y"})


def test_config_from_environment_variable(tmp_path: Path) -> None:
    path = write(tmp_path, 'state_dir = "/var/lib/sshtrail"\n')
    settings = load_settings(environ={"SSHTRAIL_CONFIG": str(path)})
    assert settings.database_url == "sqlite:////var/lib/sshtrail/sshtrail.db"


def test_sshtrail_toml_in_the_current_folder_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, 'log_level = "debug"\n')
    monkeypatch.chdir(tmp_path)
    assert load_settings(environ={}).log_level == "debug"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[kafka]\npartitions = "six"\n', r"sshtrail.toml: kafka.partitions: expected `int`"),
        ("[kafka]\npartitons = 6\n", r"sshtrail.toml: kafka.partitons: unknown key"),
        ("colour = 1\n", r"sshtrail.toml: colour: unknown key"),
        ("[broker]\nport = 70000\n", r"sshtrail.toml: broker.port: expected `int` <= 65535"),
        ("[kafka]\npartitions = 0\n", r"kafka.partitions: expected `int` >= 1"),
        (
            'log_level = "loud"\n',
            r"log_level: invalid enum value 'loud' \(expected one of: debug, info",
        ),
        ('[kafka]\nbootstrap_servers = "nohost"\n', r"kafka: bootstrap server 'nohost'"),
        ('[kafka]\ndlq_topic = "sshtrail.sessions"\n', r"topic and dlq_topic must differ"),
        ('[kafka]\ntopic = "a b"\n', r"kafka.topic: expected `str` matching"),
        ("[kafka\n", r"sshtrail.toml: not valid TOML"),
        ("kafka = 3\n", r"kafka: expected `object`, got `int`"),
        (
            '[web.oidc]\ndiscovery_url = "http://idp.example/.well-known/openid-configuration"\n'
            'client_id = "c"\n',
            r"web.oidc: discovery_url: .* must be https:// \(http:// only on loopback\)",
        ),
        (
            '[web.oidc]\ndiscovery_url = "https://idp.example/.well-known/openid-configuration"\n',
            r"web.oidc: client_id: required with discovery_url",
        ),
        (
            '[web.oidc]\ndiscovery_url = "https://idp.example/"\nclient_id = "c"\n'
            'scopes = ["profile"]\n',
            r"web.oidc: scopes: must include openid",
        ),
    ],
)
def test_bad_files_name_the_key_and_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as info:
        load_settings(path, environ={})
    assert str(path) in str(info.value)


def test_bad_environment_names_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"SSHTRAIL_BROKER__PORT: broker\.port: expected `int`"):
        load_settings(environ={"SSHTRAIL_BROKER__PORT": "ninety"})
    with pytest.raises(ConfigError, match=r"SSHTRAIL_KAFKA__TOPICS: kafka\.topics: unknown key"):
        load_settings(environ={"SSHTRAIL_KAFKA__TOPICS": "x"})
    with pytest.raises(ConfigError, match="malformed variable name SSHTRAIL_KAFKA__"):
        load_settings(environ={"SSHTRAIL_KAFKA__": "x"})


def test_missing_named_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope.toml \(from --config\) does not exist"):
        load_settings(tmp_path / "nope.toml", environ={})
    with pytest.raises(ConfigError, match=r"\(from SSHTRAIL_CONFIG\) does not exist"):
        load_settings(environ={"SSHTRAIL_CONFIG": str(tmp_path / "gone.toml")})


def test_unreadable_bytes_are_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "sshtrail.toml"
    path.write_bytes(b"\xff\xfe garbage \x00")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(path, environ={})


def test_the_search_index_defaults_to_its_own_sqlite_file() -> None:
    settings = load_settings(environ={"SSHTRAIL_STATE_DIR": "/var/lib/sshtrail"})
    assert settings.search_url == "sqlite:////var/lib/sshtrail/search.db"
    assert settings.database_url == "sqlite:////var/lib/sshtrail/sshtrail.db"


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("SSHTRAIL_CONSUMER__BATCH_SIZE", "0", "consumer.batch_size: expected `int` >= 1"),
        ("SSHTRAIL_CONSUMER__ASSIGNMENT_STRATEGY", "sticky", "expected one of: auto, cooperative"),
        ("SSHTRAIL_CONSUMER__INSTANCE_ID", "a b", "consumer.instance_id: expected `str` matching"),
    ],
)
def test_bad_consumer_settings_are_named(variable: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")) as caught:
        load_settings(environ={variable: value})
    assert variable in str(caught.value)


def test_the_recordings_compression_is_a_setting(tmp_path: Path) -> None:
    from producer.publisher import producer_config

    assert producer_config(load_settings(environ={}))["compression.type"] == "lz4"
    chosen = load_settings(write(tmp_path, '[kafka]\ncompression = "none"\n'), environ={})
    assert producer_config(chosen)["compression.type"] == "none"
    with pytest.raises(ConfigError, match="compression"):
        load_settings(write(tmp_path, '[kafka]\ncompression = "brotli"\n'), environ={})


def test_the_gateway_gives_up_on_a_silent_broker_after_10_s_unless_told(tmp_path: Path) -> None:
    """A frozen leader holds requests until this timeout (tests/e2e/test_kafka_faults.py)."""
    from producer.publisher import producer_config

    assert producer_config(load_settings(environ={}))["socket.timeout.ms"] == 10_000
    chosen = load_settings(
        write(tmp_path, '[kafka.client]\n"socket.timeout.ms" = "30000"\n'), environ={}
    )
    assert producer_config(chosen)["socket.timeout.ms"] == "30000"
