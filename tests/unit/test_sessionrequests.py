"""What a session asked the gateway for, read back from its chunks as show and the page list it."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sshtrail import events as ev
from sshtrail.ids import uuid7
from sshtrail.sessionrequests import MAX_LISTED, described, read_requests
from sshtrail.wire import GENESIS, chain_digest, encode_chunk

KEY = Ed25519PrivateKey.generate()


def _start(term: str, cols: int, rows: int) -> ev.Start:
    return ev.Start(0, "alice", "127.0.0.1:5", "t1", "h", 22, "u", "gw", term, cols, rows, 1)


def _stored(*chunks: list[ev.Event]) -> list[tuple[int, bytes]]:
    session, prev, stored = uuid7(), GENESIS, []
    for seq, events in enumerate(chunks):
        data = encode_chunk(session, seq, prev, events, KEY)
        stored.append((seq, data))
        prev = chain_digest(data)
    return stored


def test_a_cut_request_is_told_as_requested_and_granted_with_everything_else() -> None:
    stored = _stored(
        [
            _start("xterm", 1000, 500),
            ev.Notice(1, "terminal-size", "terminal size 5000x5000 requested, 1000x500 granted"),
            ev.Env(2, b"LC_FOO", b"bar", True),
            ev.Env(3, b"API_TOKEN", None, False),
        ],
        [ev.Resize(4, 100, 40), ev.Notice(5, "signal", "INT"), ev.Resize(6, 90, 30)],
    )
    found = read_requests([*stored, (2, b"not a chunk")])  # tampered: passed over
    assert found.as_json() == {
        "environment": [
            {"name": "LC_FOO", "value": "bar", "accepted": True},
            {"name": "API_TOKEN", "value": None, "accepted": False},
        ],
        "terminal_size": {"requested": [5000, 5000], "granted": [1000, 500]},
        "signals": [{"t": 5e-9, "signal": "INT"}],
        "window_changes": 2,
    }
    assert described(found, [])[:5] == [
        ("pty size", "5000x5000 requested, 1000x500 granted"),
        ("resizes", "2"),
        ("environment", "2"),
        ("", "LC_FOO=bar (passed on)"),
        ("", "API_TOKEN=(withheld: a secret's name) (not passed on)"),
    ]


def test_a_size_cut_at_a_window_change_is_not_the_size_asked_at_the_start() -> None:
    notice = ev.Notice(2, "terminal-size", "terminal size 9000x24 requested, 1000x24 granted")
    found = read_requests(_stored([_start("xterm", 80, 24), ev.Resize(1, 1000, 24), notice]))
    assert found.terminal_text() == "80x24"
    assert read_requests(_stored([_start("", 0, 0)])).as_json()["terminal_size"] is None


def test_a_client_sending_thousands_of_variables_is_listed_up_to_the_cap() -> None:
    many: list[ev.Event] = [ev.Env(1, b"V%d" % n, b"x", False) for n in range(MAX_LISTED + 5)]
    found = read_requests(_stored([_start("", 0, 0), *many]))
    assert len(found.environment) == MAX_LISTED
