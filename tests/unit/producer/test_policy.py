"""Operator policy: logins, targets, passwords, and start-up errors that name the entry."""

from __future__ import annotations

import asyncssh
import pytest

from producer.policy import Login, Policy, Refused
from sshtrail.errors import ConfigError
from sshtrail.passwords import SCRYPT_N, SCRYPT_P, SCRYPT_R, hash_password, verify_password
from sshtrail.settings import OperatorSettings, Settings, TargetSettings

KEY = asyncssh.generate_private_key("ssh-ed25519")
HOST = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
OPERATOR_KEY = KEY.export_public_key().decode().strip()


def settings(**operator: object) -> Settings:
    return Settings(
        operators=[
            OperatorSettings(
                name="alice",
                **{"keys": [OPERATOR_KEY], "targets": ["web01"], **operator},  # type: ignore[arg-type]
            )
        ],
        targets=[
            TargetSettings(name="web01", host="10.0.0.1", key="k", host_keys=[HOST]),
            TargetSettings(name="db01", host="10.0.0.2", key="k", host_keys=[HOST]),
        ],
    )


def policy(**operator: object) -> Policy:
    return Policy(settings(**operator), {"web01": KEY, "db01": KEY})


@pytest.mark.parametrize(
    ("username", "login"),
    [
        ("alice@web01", Login("alice", "web01")),
        ("alice:web01", Login("alice", "web01")),
        ("alice", Login("alice", None)),
        ("alice@", Login("alice", None)),
        ("alice:", Login("alice", None)),
        ("a.b_c-d@web-01.example", Login("a.b_c-d", "web-01.example")),
        ("o" * 64 + "@" + "t" * 64, Login("o" * 64, "t" * 64)),
    ],
)
def test_usernames_split_at_the_first_at_or_colon(username: str, login: Login) -> None:
    assert Login.parse(username) == login


@pytest.mark.parametrize(
    ("username", "shown"),
    [
        ("", "malformed login '': log in as OPERATOR@TARGET (or OPERATOR:TARGET)"),
        ("@", "malformed login '@': log in as OPERATOR@TARGET"),
        ("@web01", "malformed login '@web01': log in as OPERATOR@TARGET"),
        (":web01", "malformed login ':web01': log in as OPERATOR@TARGET"),
        ("alice@web01@", "the target 'web01@' is not a name"),
        ("alice@web01@gw", "the target 'web01@gw' is not a name"),
        ("alice:web:01", "the target 'web:01' is not a name"),
        ("alice@web01:x", "the target 'web01:x' is not a name"),
        ("alice@web\x1b[2J01", "the target 'web\\x1b[2J01' is not a name"),
        ("al\x00ice@web01", "malformed login 'al\\x00ice@web01'"),
        ("al ice@web01", "malformed login 'al ice@web01'"),
        ("o" * 65 + "@web01", "malformed login '" + "o" * 64 + "'...: log in as"),
        ("alice@" + "t" * 5000, "the target '" + "t" * 64 + "'... is not a name"),
    ],
)
def test_garbage_logins_are_refused_saying_what_is_wrong(username: str, shown: str) -> None:
    with pytest.raises(Refused) as info:
        Login.parse(username)
    assert shown in info.value.message
    assert info.value.kind == "malformed login"
    assert len(info.value.message) < 300
    assert all(ch.isprintable() for ch in info.value.message)


def test_targets_are_resolved_or_refused_with_the_list() -> None:
    rules = policy()
    assert rules.resolve(Login("alice", "web01")).name == "web01"
    with pytest.raises(Refused, match=r"target 'db01' is not one of yours: web01") as info:
        rules.resolve(Login("alice", "db01"))
    assert info.value.reason == "refused: target not allowed"
    with pytest.raises(Refused, match="Log in as alice@TARGET; your targets: web01"):
        rules.resolve(Login("alice", None))
    assert policy(targets=["*"]).targets_for("alice") == ["db01", "web01"]


def test_passwords_are_scrypt_hashes() -> None:
    stored = hash_password("correct horse battery")
    assert stored.startswith("scrypt$")
    assert verify_password(stored, "correct horse battery")
    assert not verify_password(stored, "correct horse battery!")
    assert not verify_password("scrypt$garbage", "x")
    rules = policy(password_hash=stored)
    assert rules.check_password("alice", "correct horse battery")
    assert not policy().check_password("alice", "correct horse battery")


def scrypt_costs(monkeypatch: pytest.MonkeyPatch, module: object) -> list[tuple[str, ...]]:
    """Record the scrypt cost (N, r, p) of every hash ``module`` checks a password against."""
    costs: list[tuple[str, ...]] = []

    def checked(stored: str, password: str) -> bool:
        costs.append(tuple(stored.split("$")[1:4]))
        return verify_password(stored, password)

    monkeypatch.setattr(module, "verify_password", checked)
    return costs


def test_every_name_costs_one_full_scrypt_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unknown names, names without a password and wrong passwords each cost one check
    of a real-cost hash (a dummy one where there is none): timing tells no names."""
    from producer import policy as module

    costs = scrypt_costs(monkeypatch, module)
    rules = Policy(
        Settings(
            operators=[
                OperatorSettings(name="alice", keys=[OPERATOR_KEY], targets=["web01"]),
                OperatorSettings(
                    name="pat", password_hash=hash_password("right"), targets=["web01"]
                ),
            ],
            targets=[TargetSettings(name="web01", host="10.0.0.1", key="k", host_keys=[HOST])],
        ),
        {"web01": KEY},
    )
    for name, password in (("zed", "x"), ("alice", "x"), ("pat", "wrong"), ("pat", "right")):
        assert rules.check_password(name, password) is (password == "right")
    real = (str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P))
    assert costs == [real] * 4


@pytest.mark.parametrize(
    ("operator", "message"),
    [
        ({"keys": ["ssh-ed25519 not-base64"]}, "operators.alice.keys: bad key"),
        ({"password_hash": "plaintext"}, "operators.alice.password_hash: not a hash"),
    ],
)
def test_bad_operator_entries_fail_start_up_naming_them(
    operator: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        policy(**operator)


def test_a_target_without_a_way_to_check_its_host_key_is_refused_at_start() -> None:
    bad = Settings(targets=[TargetSettings(name="t", host="h", key="k")])
    with pytest.raises(ConfigError, match=r"targets\.t\.host_keys: no host_keys"):
        Policy(bad, {"t": KEY})
