"""The web console's accounts: every name costs one check of a real-cost scrypt hash,
so how long a sign-in takes tells nothing about which auditors exist."""

from __future__ import annotations

import pytest

from consumer.web import auth
from sshtrail.passwords import SCRYPT_N, SCRYPT_P, SCRYPT_R, hash_password, verify_password
from sshtrail.settings import AuditorSettings, Settings


def test_every_name_costs_one_full_scrypt_check(monkeypatch: pytest.MonkeyPatch) -> None:
    costs: list[tuple[str, ...]] = []

    def checked(stored: str, password: str) -> bool:
        costs.append(tuple(stored.split("$")[1:4]))
        return verify_password(stored, password)

    monkeypatch.setattr(auth, "verify_password", checked)
    accounts = auth.Accounts(
        Settings(
            auditors=[
                AuditorSettings(name="ann", password_hash=hash_password("right")),
                AuditorSettings(name="sso-only"),  # signs in through a proxy only
            ]
        )
    )
    tried = [("zed", "x"), ("sso-only", "x"), ("ann", "wrong"), ("ann", "right")]
    found = [accounts.check(name, password) for name, password in tried]
    assert [auditor.name if auditor else None for auditor in found] == [None, None, None, "ann"]
    assert costs == [(str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P))] * len(tried)
