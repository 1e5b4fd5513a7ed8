"""Four eyes: a command held at the real gateway until an auditor answers.

The real OpenSSH client through one of two real gateways to a real sshd; the policy
holds ``rm`` for review; auditors answer with ``sshtrail review`` (signed with the
control key, on the shared control topic) and the gateway that holds the review --
not the other one -- acts. Checked on the target (an approved ``rm`` removes its file,
a denied one leaves it), on the operator's terminal, on the topic, and in the store.
Forged, self-approved and replayed answers are refused.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pexpect
import pytest
from confluent_kafka import Producer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sshtrail import control
from sshtrail.keyfiles import load_ed25519_private
from sshtrail.passwords import hash_password
from tests.support.browser import (
    chromium,
    needs_chromium,
    problems_in_console,
    sign_in,
    start_console,
)
from tests.support.controlstack import Stack
from tests.support.gateway import toml_value
from tests.support.kafka import Broker
from tests.support.sshd import SshdTarget
from tests.support.topicread import every_message
from tests.support.waiting import wait_for

pytestmark = pytest.mark.e2e

#: The gateways' wait for an answer: long enough for several auditors' commands under a
#: full run's load ...
TIMEOUT_S = 90
#: ... and, where the test waits it out, long enough for one.
SHORT_TIMEOUT_S = 20

RULES = """
[[rule]]
name = "four-eyes"
action = "review"
match = ["rm"]
targets = ["t1"]
message = "removing files needs a second person"
"""


@pytest.fixture
def review_timeout_s() -> float:
    return TIMEOUT_S


@pytest.fixture
def stack(
    tmp_path: Path, broker: Broker, sshd: SshdTarget, review_timeout_s: float
) -> Iterator[Stack]:
    rules = tmp_path / "policy.toml"
    rules.write_text(RULES)
    tail = f"[policy]\nfile = {toml_value(str(rules))}\nreview_timeout_s = {review_timeout_s}\n"
    made = Stack(tmp_path, broker, sshd, gateway_tail=tail)
    made.start()
    yield made
    made.stop()


def long_path() -> Path:
    """A file whose ``rm`` line is wider than the 80-column terminal: bash redraws it
    at the edge, and the gate reads it across the wrap."""
    return Path("/tmp") / f"v{uuid.uuid4().hex[:8]}-{'long-path-component-' * 5}"


def shell(stack: Stack) -> tuple[pexpect.spawn, str]:
    """A bash through the second gateway at a known prompt, and its session id."""
    child, session_id = stack.active_session(stack.two)
    child.sendline("exec bash --norc --noprofile")
    child.sendline("PS1='READY> '")
    child.expect("READY> ")
    child.expect("READY> ")
    return child, session_id


def held(child: pexpect.spawn, command: str) -> str:
    """Type ``command`` and Enter; the id of the review the gateway holds it for."""
    child.sendline(command)
    child.expect("removing files needs a second person")
    child.expect(r"waiting for approval \(rule four-eyes, request ([0-9a-f]{8})\)")
    return str(child.match.group(1).decode())


def reviews(stack: Stack, *argv: str) -> list[dict[str, Any]]:
    done = stack.run("reviews", "--json", *argv)
    assert done.returncode in (0, 1), done.stderr
    found: list[dict[str, Any]] = json.loads(done.stdout)
    return found


def answer(stack: Stack, review: str, verdict: str, who: str, reason: str) -> Any:
    return stack.run("review", review, verdict, "--reason", reason, "--as", who)


def results(stack: Stack, request_id: str) -> list[control.Result]:
    """The gateways' results naming ``request_id``, as they are on the topic."""
    trusted = set(_gateway_keys(stack))
    return [
        message
        for key, value in _raw(stack.servers, stack.one.control_topic)
        if key == control.RESULT_PREFIX + request_id.encode()
        for message in [control.decode(value, trusted, key)]
        if isinstance(message, control.Result)
    ]


def _gateway_keys(stack: Stack) -> list[bytes]:
    keys = []
    for gateway in (stack.one, stack.two):
        path = gateway.workdir / "state" / "gateway" / "recording_ed25519_key"
        keys.append(load_ed25519_private(path, "key").public_key().public_bytes_raw())
    return keys


def _raw(servers: str, topic: str) -> list[tuple[bytes, bytes]]:
    """Every message on ``topic``: key and value."""
    return every_message(servers, topic)


def _send(servers: str, topic: str, key: bytes, value: bytes) -> None:
    producer = Producer({"bootstrap.servers": servers})
    producer.produce(topic, value, key)
    assert producer.flush(15) == 0


def _answer_signed(
    signer: Ed25519PrivateKey, review: control.ReviewRequest, auditor: str
) -> control.ReviewAnswer:
    return control.ReviewAnswer(
        request_id=control.new_id(),
        at=control.now_ns(),
        review=review.request_id,
        session=review.session,
        approve=True,
        auditor=auditor,
        reason="forged or self-made",
    )


def _request(stack: Stack, short: str) -> control.ReviewRequest:
    for key, value in _raw(stack.servers, stack.one.control_topic):
        if key.startswith(control.REVIEW_PREFIX + short.encode()):
            message = control.decode(value, set(_gateway_keys(stack)), key)
            assert isinstance(message, control.ReviewRequest)
            return message
    raise AssertionError(f"no review request {short} on the topic")


def test_a_held_command_runs_only_once_another_person_approves_it(
    stack: Stack, tmp_path: Path
) -> None:
    victim = long_path()
    victim.write_text("x")
    child, session_id = shell(stack)
    review = held(child, f"rm {victim}")
    time.sleep(0.5)
    assert victim.exists()  # held: not run
    [listed] = reviews(stack)
    assert listed["id"].startswith(review)
    assert listed["status"] == "waiting"
    assert (listed["operator"], listed["target"]) == ("alice", "t1")
    assert (listed["command"], listed["gateway"]) == (f"rm {victim}", "gw-two")

    # The operator may not approve their own command: the CLI says so, and an answer
    # made without the CLI (signed with the control key) is refused by the gateway.
    own = answer(stack, review, "approve", "alice", "mine")
    assert own.returncode == 2
    assert b"alice may not answer a review of their own command" in own.stderr
    request = _request(stack, review)
    signer = load_ed25519_private(stack.one.control_key, "control.signing_key")
    self_made = _answer_signed(signer, request, "alice")
    _send(
        stack.servers,
        stack.one.control_topic,
        control.key_of(self_made),
        control.encode(self_made, signer),
    )
    wait_for(
        lambda: [r.outcome for r in results(stack, self_made.request_id)] == ["refused"],
        what="the gateway refusing the operator's own approval",
        timeout=20,
    )
    # An answer signed by a key no gateway trusts is refused and logged.
    stranger = Ed25519PrivateKey.generate()
    forged = _answer_signed(stranger, request, "mallory")
    mark = len(stack.two.output)
    _send(
        stack.servers,
        stack.one.control_topic,
        control.key_of(forged),
        control.encode(forged, stranger),
    )
    wait_for(
        lambda: any("not trusted" in line for line in stack.two.output[mark:]),
        what="the gateway refusing the forged approval",
        timeout=20,
    )
    assert victim.exists()
    assert reviews(stack)[0]["status"] == "waiting"

    approved = answer(stack, review, "approve", "bob", "checked the ticket")
    assert approved.returncode == 0, approved.stderr
    assert b"approved by bob" in approved.stdout
    assert b"gateway gw-two" in approved.stdout
    child.expect("approved by bob after [0-9.]+ s: checked the ticket")
    child.expect("READY> ")
    wait_for(lambda: not victim.exists(), what="the approved rm run on the target")
    assert reviews(stack) == []
    [closed] = reviews(stack, "--all")
    assert closed["status"] == "approved"

    # The approval re-sent as it was (a replay) is refused: the review is over.
    [(key, value)] = [
        (key, value)
        for key, value in _raw(stack.servers, stack.one.control_topic)
        if key == control.ANSWER_PREFIX + request.request_id.encode()
        and b"checked the ticket" in _body(value)
    ]
    first = json.loads(_body(value))["request_id"]
    _send(stack.servers, stack.one.control_topic, key, value)
    wait_for(
        lambda: [r.outcome for r in results(stack, first)] == ["approved", "refused"],
        what="the replayed approval refused",
        timeout=20,
    )
    child.sendline("exit")
    child.expect(pexpect.EOF)
    wait_for(
        lambda: (stack.row(session_id) or {}).get("policy") == "reviewed",
        what="the session stored as reviewed",
        timeout=30,
    )
    shown = stack.run("show", session_id, "--json", check=True)
    notices = [n["text"] for n in json.loads(shown.stdout)["policy_decisions"]]
    assert f"review by rule four-eyes: rm {victim}" in notices
    assert any(
        re.fullmatch(
            rf"review by rule four-eyes approved by bob after [0-9.]+ s: "
            rf'"checked the ticket": rm {re.escape(str(victim))}',
            n,
        )
        for n in notices
    ), notices
    listed_reviewed = stack.run("sessions", "--policy", "reviewed", "--json", check=True)
    assert uuid.UUID(session_id) in {uuid.UUID(s["id"]) for s in json.loads(listed_reviewed.stdout)}


def _body(value: bytes) -> bytes:
    return base64.b64decode(json.loads(value)["body"])


@pytest.mark.parametrize("review_timeout_s", [SHORT_TIMEOUT_S])
def test_denied_cancelled_and_unanswered_commands_do_not_run_and_the_session_goes_on(
    stack: Stack, tmp_path: Path, review_timeout_s: float
) -> None:
    victim = long_path()
    victim.write_text("x")
    child, session_id = shell(stack)

    review = held(child, f"rm {victim}")
    denied = answer(stack, review, "deny", "bob", "not during the freeze")
    assert denied.returncode == 0, denied.stderr
    child.expect("not run: review denied by bob after [0-9.]+ s: not during the freeze")
    child.expect("READY> ")

    held(child, f"rm {victim}")
    child.send("\x03")  # the operator changes their mind
    child.expect("not run: review cancelled after [0-9.]+ s: by the operator")
    child.expect("READY> ")

    started = time.monotonic()
    review = held(child, f"rm {victim}")
    child.expect("not run: review timed out", timeout=review_timeout_s + 20)
    assert time.monotonic() - started >= review_timeout_s - 1
    child.expect("READY> ")
    late = answer(stack, review, "approve", "bob", "too late")
    assert late.returncode == 1
    assert b"timed out" in late.stderr

    child.sendline("echo still-$((20+1))")
    child.expect("still-21")
    assert victim.exists()  # checked on the target: none of the three ran
    child.sendline("exit")
    child.expect(pexpect.EOF)
    wait_for(
        lambda: (stack.row(session_id) or {}).get("policy") == "rejected",
        what="the session stored as rejected",
        timeout=30,
    )
    shown = json.loads(stack.run("show", session_id, "--json", check=True).stdout)
    notices = [n["text"] for n in shown["policy_decisions"]]
    for outcome in ("denied by bob", "cancelled", "timed out"):
        assert any(
            n.startswith(f"reject by rule four-eyes after review {outcome}") for n in notices
        ), (outcome, notices)


def waiting(stack: Stack) -> list[dict[str, Any]]:
    """The reviews waiting, once there is one."""
    found: list[dict[str, Any]] = []

    def some() -> bool:
        found[:] = reviews(stack)
        return bool(found)

    wait_for(some, what="a command held for review", timeout=30)
    return found


def test_an_exec_request_waits_for_its_review(stack: Stack, tmp_path: Path) -> None:
    victim = long_path()
    victim.write_text("x")
    status, err = exec_answered(stack, f"rm {victim}", "deny")
    assert status == 126
    assert b"not run: review denied by bob" in err
    assert victim.exists()
    status, err = exec_answered(stack, f"rm {victim}", "approve")
    assert status == 0, err
    assert b"approved by bob" in err
    assert not victim.exists()


def exec_answered(stack: Stack, command: str, verdict: str) -> tuple[int, bytes]:
    """``ssh alice:t1 COMMAND`` through the second gateway, answered once it is held:
    the client's exit status and stderr."""
    client = subprocess.Popen(
        stack.two.ssh("alice:t1", command), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        found = waiting(stack)
        assert answer(stack, found[0]["id"], verdict, "bob", "checked").returncode == 0
        _out, err = client.communicate(timeout=30)
        return client.returncode, err
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()


@needs_chromium
def test_a_review_answered_in_the_console_reaches_the_gateway_that_holds_it(
    stack: Stack, browser: object, tmp_path: Path
) -> None:
    """The shell is on the second gateway; the console is one process reading the shared
    control topic. The list updates itself; an auditor scoped to other targets sees no
    review of t1, one without the right sees it but cannot answer, the operator cannot
    answer their own."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    auditors = [
        ("bob", 'approve = true\ntargets = ["t1"]\n'),
        ("carol", 'approve = true\ntargets = ["db-*"]\n'),
        ("dave", ""),
        ("alice", "approve = true\n"),
    ]
    stack.config.write_text(
        stack.config.read_text()
        + "".join(
            f'[[auditors]]\nname = "{name}"\n{extra}'
            + f'password_hash = "{hash_password(name + "-password-1")}"\n'
            for name, extra in auditors
        )
    )
    process, url = start_console(stack.config, tmp_path)
    victim = long_path()
    victim.write_text("x")
    try:
        child, session_id = shell(stack)
        d: Any = browser
        sign_in(d, url, "bob", "bob-password-1")
        d.get(f"{url}/reviews")
        assert d.find_element(By.ID, "waiting-count").text == "0"
        review = held(child, f"rm {victim}")
        # The page was open before the command was held: it shows it without a reload.
        wait_for(
            lambda: d.find_elements(By.CSS_SELECTOR, f'#reviews tr[data-review^="{review}"]'),
            what="the held command on the open page",
            timeout=15,
        )
        row = d.find_element(By.CSS_SELECTOR, f'#reviews tr[data-review^="{review}"]')
        assert f"rm {victim}" in row.text
        assert "alice" in row.text
        assert problems_in_console(d) == []

        for name, expected in (
            ("carol", None),
            ("dave", "you may not answer"),
            ("alice", "your own"),
        ):
            other: Any = chromium()
            try:
                sign_in(other, url, name, f"{name}-password-1")
                other.get(f"{url}/reviews")
                rows = other.find_elements(By.CSS_SELECTOR, f'#reviews tr[data-review^="{review}"]')
                if expected is None:
                    assert rows == [], f"{name} sees a review out of scope"
                else:
                    assert expected in rows[0].text, (name, rows[0].text)
                    assert rows[0].find_elements(By.CSS_SELECTOR, "button.approve") == []
            finally:
                other.quit()

        # The list is redrawn every two seconds until a reason is being written in it.
        for _ in range(10):
            try:
                row = d.find_element(By.CSS_SELECTOR, f'#reviews tr[data-review^="{review}"]')
                row.find_element(By.CSS_SELECTOR, "input.reason").send_keys("ticket 4711")
                break
            except StaleElementReferenceException:
                continue
        row = d.find_element(By.CSS_SELECTOR, f'#reviews tr[data-review^="{review}"]')
        assert row.find_element(By.CSS_SELECTOR, "input.reason").get_attribute("value") == (
            "ticket 4711"
        )
        time.sleep(2.5)  # a refresh would have replaced it by now: it is kept while written
        row.find_element(By.CSS_SELECTOR, "button.approve").click()
        # The answer's page comes once the gateway holding the review has answered.
        wait_for(lambda: d.find_elements(By.ID, "outcome"), what="the answer's page", timeout=30)
        outcome = d.find_element(By.ID, "outcome").text
        assert "approved by bob" in outcome
        assert "ticket 4711" in outcome
        child.expect("approved by bob after [0-9.]+ s: ticket 4711")
        wait_for(lambda: not victim.exists(), what="the approved rm run on the target")
        d.get(f"{url}/reviews")
        ended = d.find_element(By.CSS_SELECTOR, f'#ended-reviews tr[data-review^="{review}"]')
        assert "approved" in ended.text
        d.save_screenshot(str(tmp_path / "reviews.png"))
        entries = stack.run("access-log", "--json", "--auditor", "bob", check=True).stdout
        actions = [(e["action"], e["session"]) for e in json.loads(entries)]
        assert ("reviews", None) in actions
        assert ("approve", str(uuid.UUID(session_id))) in actions
        child.sendline("exit")
        child.expect(pexpect.EOF)
    finally:
        process.terminate()
        process.wait(timeout=30)
