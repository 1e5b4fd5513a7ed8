"""The configuration reference in docs/operations.md is the settings model's own."""

from __future__ import annotations

from pathlib import Path

import msgspec
import msgspec.inspect as mi
import pytest

from sshtrail import settings_doc
from sshtrail.cli.main import main
from sshtrail.settings import Settings, load_settings

OPERATIONS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def test_docs_hold_the_current_reference() -> None:
    document = OPERATIONS.read_text()
    assert settings_doc.spliced(document) == document, (
        "docs/operations.md is out of date: python -m sshtrail.settings_doc docs/operations.md"
    )


def _leaf_count(struct: object) -> int:
    count = 0
    for field in struct.fields:  # type: ignore[attr-defined]
        kind = field.type
        if isinstance(kind, mi.StructType):
            count += _leaf_count(kind)
        elif isinstance(kind, mi.ListType) and isinstance(kind.item_type, mi.StructType):
            count += _leaf_count(kind.item_type)
        else:
            count += 1
    return count


def test_every_key_is_in_the_reference_with_a_meaning() -> None:
    rows = list(settings_doc.rows())
    assert len(rows) == _leaf_count(mi.type_info(Settings))
    assert all(meaning for *_, meaning in rows)
    keys = [key for key, *_ in rows]
    assert len(set(keys)) == len(keys)


@pytest.mark.parametrize(
    ("key", "env"),
    [(key, env) for key, _, _, env, _ in settings_doc.rows() if env and not key.endswith("NAME")],
)
def test_every_variable_named_in_the_reference_sets_its_key(key: str, env: str) -> None:
    default = _value(load_settings(environ={}), key)
    changed = {
        bool: lambda v: not v,
        int: lambda v: v + 1,
        float: lambda v: v / 2,
        str: lambda v: v + "x",
    }
    choices = {
        "log_level": "debug",
        "gateway.spool.policy": "fail-open",
        "consumer.assignment_strategy": "range",
        "consumer.group_protocol": "consumer",
        "kafka.compression": "zstd",
        "gateway.recorder": "thread",
        "alerts.webhook_format": "slack",
        "retention.access_log_keep": "400d",
    }
    if key in choices:
        wanted: object = choices[key]
    elif key.endswith("url") and key.startswith("alerts."):
        wanted = "https://console.example"
    elif key == "alerts.webhook":
        wanted = "https://siem.example/hook"
    elif key.startswith("web.oidc.") and key.endswith("url"):
        wanted = "https://idp.example/.well-known/openid-configuration"
    elif key.endswith("url"):
        wanted = "sqlite:///elsewhere.db"
    elif key == "kafka.bootstrap_servers":
        wanted = "kafka:9092"
    else:
        wanted = changed[type(default)](default)
    value = str(wanted).lower() if isinstance(wanted, bool) else str(wanted)
    # Sign-in with a provider needs the console's client id with its address.
    partner = {"SSHTRAIL_WEB__OIDC__CLIENT_ID": "console"} if key.startswith("web.oidc.") else {}
    assert _value(load_settings(environ={**partner, env: value}), key) == wanted


def test_table_variables_set_one_entry() -> None:
    settings = load_settings(environ={"SSHTRAIL_KAFKA__CLIENT__SASL.USERNAME": "gw"})
    assert settings.kafka.client == {"sasl.username": "gw"}


def _value(settings: Settings, key: str) -> object:
    node: object = settings
    for part in key.split("."):
        node = getattr(node, part)
    return node


def test_the_cli_prints_the_same_reference(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "--reference"]) == 0
    assert capsys.readouterr().out == settings_doc.reference()


def test_a_key_without_a_comment_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    described = settings_doc.comments()
    del described[("GatewaySettings", "port")]
    monkeypatch.setattr(settings_doc, "comments", lambda: described)
    with pytest.raises(LookupError, match=r"gateway\.port has no '#:' comment"):
        list(settings_doc.rows())


def test_defaults_are_shown_as_the_model_has_them() -> None:
    shown = {key: default for key, _, default, _, _ in settings_doc.rows()}
    assert shown["gateway.port"] == "`2222`"
    assert shown["gateway.record"] == "`true`"
    assert shown["state_dir"] == '`"./sshtrail-data"`'
    assert shown["targets[].host"] == "required"
    assert shown["instance"] == "the host name"
    assert msgspec.json.decode(shown["gateway.spool.max_bytes"].strip("`")) == 1 << 30
