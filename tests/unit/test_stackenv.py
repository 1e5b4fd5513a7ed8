"""The variables ``sshtrail up`` recorded: read by commands next to its stack, in their place."""

from __future__ import annotations

from pathlib import Path

import pytest

from sshtrail import stackenv
from sshtrail.errors import ConfigError
from sshtrail.settings import read_settings

STATE = Path("sshtrail-data")


@pytest.fixture(autouse=True)
def in_a_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    STATE.mkdir()


def test_a_command_takes_what_up_ran_with_below_its_own_variables() -> None:
    stackenv.write(STATE, None, {"SSHTRAIL_BROKER__PORT": "9196", "SSHTRAIL_WEB__PORT": "8100"})
    settings, sources = read_settings(environ={"SSHTRAIL_WEB__PORT": "8200"}, recorded=True)
    assert settings.bootstrap_servers == "127.0.0.1:9196"
    assert settings.web.port == 8200  # this command's own variable wins
    assert sources.recorded == STATE / stackenv.FILE
    assert sources.recorded_variables == ("SSHTRAIL_BROKER__PORT",)
    assert sources.environment == ("SSHTRAIL_WEB__PORT",)
    assert (STATE / stackenv.FILE).stat().st_mode & 0o077 == 0


def test_the_record_ranks_above_the_settings_file() -> None:
    Path("sshtrail.toml").write_text("[broker]\nport = 9300\n[web]\nport = 8300\n")
    stackenv.write(STATE, Path("sshtrail.toml"), {"SSHTRAIL_BROKER__PORT": "9196"})
    settings, sources = read_settings(environ={}, recorded=True)
    assert (settings.broker.port, settings.web.port) == (9196, 8300)
    assert sources.file == Path("sshtrail.toml")


def test_a_command_pointed_at_another_file_skips_the_record(tmp_path: Path) -> None:
    stackenv.write(STATE, None, {"SSHTRAIL_BROKER__PORT": "9196"})
    other = tmp_path / "other.toml"
    other.write_text("")
    settings, sources = read_settings(other, environ={}, recorded=True)
    assert settings.broker.port == 9092
    assert sources.recorded is None
    assert sources.skipped == (
        f"{STATE / stackenv.FILE} was not used: sshtrail up read no settings file, "
        f"this command reads {other.resolve()}"
    )


def test_up_and_explicit_environments_do_not_read_it() -> None:
    stackenv.write(STATE, None, {"SSHTRAIL_BROKER__PORT": "9196"})
    assert read_settings(environ={}, recorded=False)[0].broker.port == 9092  # up
    assert read_settings(environ={})[0].broker.port == 9092  # a question about {} alone


def test_the_record_is_found_in_the_state_dir_the_settings_name(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    stackenv.write(elsewhere, None, {"SSHTRAIL_BROKER__PORT": "9196"})
    environ = {"SSHTRAIL_STATE_DIR": str(elsewhere)}
    assert read_settings(environ=environ, recorded=True)[0].broker.port == 9196
    assert read_settings(environ={}, recorded=True)[0].broker.port == 9092


def test_a_bad_recorded_value_is_blamed_on_the_record() -> None:
    stackenv.write(STATE, None, {"SSHTRAIL_BROKER__PORT": "many"})
    with pytest.raises(ConfigError, match="variable SSHTRAIL_BROKER__PORT recorded by sshtrail up"):
        read_settings(environ={}, recorded=True)


@pytest.mark.parametrize(
    "text", ["{", "[]", '{"environment": {"SSHTRAIL_X": 1}}', '{"environment": {}, "config": 3}']
)
def test_a_record_that_is_not_one_is_named(text: str) -> None:
    (STATE / stackenv.FILE).write_text(text)
    with pytest.raises(ConfigError, match=f"{stackenv.FILE}: "):
        read_settings(environ={}, recorded=True)
