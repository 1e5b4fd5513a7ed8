"""How fast the web console answers over a large store, against its own ``/healthz``.

Fills a SQLite store with ``--sessions`` closed sessions (through the store's
writer, as bench.audit does) and an index with ``--lines`` lines, adds one
session of ``--big-mb`` MB of output, starts ``sshtrail web`` in its own
process, signs in, and times each page as a browser gets it (a new request
over loopback, wall time at the client): p50 and p95 of ``--runs`` requests,
and the ratio of the p50 to ``/healthz``'s (what one request costs before any
page work). For the big recording: the time to the first byte of the
whole asciicast (what /cast streams), and to its last byte. In chromium: the
time from navigating to a session's page to the first frame on its player
(the recording played in pieces), at the start and at ?t= its middle, for
text sessions of each of ``--frame-mb`` MB and the random-bytes one, each as
a ratio to the smallest session's measured first in the same run.

Goals (issue 19): sessions page over 100,000 sessions p95 <= 100 ms; search
pages as fast as the CLI's search (bench.audit); the player starts a 100 MB
recording in <= 1 s; issue 33: whatever its size.

    python -m bench.web [--sessions 100000] [--lines 200000] [--big-mb 100] [--runs 30]
                        [--frame-mb 10,100,1000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import select

from bench.audit import fill_databases, timed
from bench.scratch import scratch
from consumer.messages import Received
from consumer.store import StoreWriter
from sshtrail.broker import free_port
from sshtrail.passwords import hash_password
from sshtrail.tables import SESSIONS
from sshtrail.wire import decode_chunk
from tests.support.recordings import SIGNER, streamed_recording

PASSWORD = "bench-password"


def big_session(store_url: str, megabytes: int, text: bool) -> str:
    """One closed session of ``megabytes`` MB of output (terminal text, or random bytes:
    the worst case, each a ``\ufffd`` escape in the asciicast), in 64 KiB chunks 1 ms
    apart, written 200 chunks at a time (a 1 GB session never whole in memory); with 0,
    the smallest session the player shows: one chunk of one line."""
    from sshtrail.db import make_engine

    engine = make_engine(store_url)
    writer = StoreWriter(engine, dt.timedelta(hours=1))
    chunks, size = (megabytes * 16 + 2, 64 << 10) if megabytes else (3, 80)
    session_id, messages = streamed_recording(chunks, size, target="big", text=text)
    now = dt.datetime.now(dt.UTC)
    batch: list[Received] = []
    for i, message in enumerate(messages):
        batch.append(Received(decode_chunk(message), 1, i, now))
        if len(batch) == 200:
            writer.write(batch)
            batch = []
    if batch:
        writer.write(batch)
    engine.dispose()
    return session_id.hex


def serve(workdir: Path, store_url: str, search_url: str) -> tuple[subprocess.Popen[bytes], int]:
    """``sshtrail web`` over the store, trusting the key the sessions are signed with (as a
    real stack's console trusts its gateway's: stored verdicts stand)."""
    port = free_port()
    key = workdir / "recording_ed25519_key"
    key.with_suffix(".pub").write_bytes(
        SIGNER.public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH)
    )
    config = workdir / "web.toml"
    with config.open("w") as out:
        out.write(
            f'state_dir = "{workdir}/state"\n[database]\nurl = "{store_url}"\n'
            f'[gateway]\nsigning_key = "{key}"\n'
            f'[search]\nurl = "{search_url}"\n[web]\nport = {port}\n'
            f'[[auditors]]\nname = "bench"\nrole = "admin"\n'
            f'password_hash = "{hash_password(PASSWORD)}"\n'
        )
    process = subprocess.Popen(
        [sys.executable, "-m", "sshtrail", "--config", str(config), "web"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return process, port
        time.sleep(0.1)
    process.kill()
    sys.exit("sshtrail web did not start")


def signed_in(base: str) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=60)
    page = client.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token is not None
    answer = client.post(
        "/login", data={"name": "bench", "password": PASSWORD, "csrf": token[1], "next": "/"}
    )
    assert answer.status_code in (200, 303), answer.status_code
    return client


def stream_cast(
    client: httpx.Client, session: str, what: str, baseline: tuple[float, float] | None = None
) -> tuple[float, float]:
    """Time the asciicast download the player makes: (first byte, last byte), printed with
    their ratio to ``baseline`` (the same for the smallest session) when given."""
    started = time.perf_counter()
    first = None
    size = 0
    with client.stream("GET", f"/sessions/{session}/cast") as answer:
        for piece in answer.iter_raw():
            if first is None:
                first = time.perf_counter() - started
            size += len(piece)
    whole = time.perf_counter() - started
    first = first or 0.0
    ratio = (
        f"  ({first / baseline[0]:.1f}x and {whole / baseline[1]:.0f}x the smallest session's)"
        if baseline
        else ""
    )
    print(
        f"asciicast of {what}: first byte {first * 1000:.0f} ms, all "
        f"{size / 1e6:.1f} MB in {whole:.2f} s ({size / 1e6 / whole:.0f} MB/s){ratio}"
    )
    return first, whole


#: Put in every page before its own scripts (CDP): the moment, in ms since the page's
#: navigation began, the player's terminal first shows any text -- the first frame.
FIRST_FRAME = """
new MutationObserver(() => {
  if (window.sshtrailFirstFrame !== undefined) { return; }
  for (const line of document.querySelectorAll("#player .ap-term-text")) {
    if (line.textContent.trim()) { window.sshtrailFirstFrame = performance.now(); return; }
  }
}).observe(document, { subtree: true, childList: true, characterData: true });
"""


def first_frames(base: str, sessions: dict[str, tuple[str, float]], smallest: str) -> None:
    """In Debian's chromium: from navigating to a session's page to the first frame on its
    player, at the start and at ``?t=`` (a search hit's moment: the given seconds), against
    the smallest session's (``smallest``: one chunk of one line), measured first in the
    same browser; and which pieces the page fetched."""
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        print("player start in the browser: not measured (chromium, chromium-driver missing)")
        return
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.binary_location = shutil.which("chromium") or "chromium"
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": FIRST_FRAME})
    try:
        driver.get(f"{base}/login")
        driver.find_element(By.ID, "name").send_keys("bench")
        driver.find_element(By.ID, "password").send_keys(PASSWORD)
        driver.find_element(By.ID, "sign-in").click()
        baseline: float | None = None
        runs = {"the smallest session": (smallest, 0.0), **sessions}
        for kind, (session, middle) in runs.items():
            for at in (0.0, middle) if middle else (0.0,):
                query = f"?t={at:.3f}&idle=" if at else "?idle="
                driver.get(f"{base}/sessions/{session}{query}")
                started = time.perf_counter()
                took = None
                while time.perf_counter() - started < 120:
                    took = driver.execute_script("return window.sshtrailFirstFrame")
                    if took is not None:
                        break
                    time.sleep(0.01)
                if took is None:
                    print(f"first frame in chromium, {kind}: none after 120 s")
                    continue
                fetched = driver.execute_script(
                    "return performance.getEntriesByType('resource')"
                    ".map(e => e.name).filter(n => n.includes('/pieces'))"
                    ".map(n => n.split('/pieces')[1] || 'index')"
                )
                where = f"at t={at:.2f} s (its middle)" if at else "at the start"
                ratio = f"  ({took / baseline:.2f}x the smallest session's)" if baseline else ""
                print(
                    f"first frame in chromium, {kind}, {where}: {took:.0f} ms from navigating"
                    f"{ratio}; fetched: {', '.join(fetched)}"
                )
                if session == smallest:
                    baseline = took
    finally:
        driver.quit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--big-mb", type=int, default=100)
    parser.add_argument(
        "--frame-mb",
        default="10,100,1000",
        help="sizes (MB, comma-separated) of the text sessions timed to their first frame",
    )
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    workdir = scratch("bench-web-")
    store_url, search_url = f"sqlite:///{workdir / 'store.db'}", f"sqlite:///{workdir / 's.db'}"
    began = time.monotonic()
    store, index = fill_databases(store_url, search_url, args.sessions, args.lines)
    with store.connect() as conn:
        some = conn.execute(select(SESSIONS.c.id).limit(1)).scalar_one().hex
    store.dispose()
    index.dispose()
    smallest = big_session(store_url, 0, text=True)
    big = {
        f"{args.big_mb} MB of text": big_session(store_url, args.big_mb, text=True),
        f"{args.big_mb} MB of random bytes": big_session(store_url, args.big_mb, text=False),
    }
    framed_: dict[str, tuple[str, float]] = {}  # kind: (session, the middle's seconds)
    for mb in (int(x) for x in args.frame_mb.split(",") if x):
        made = time.monotonic()
        framed_[f"{mb} MB of text"] = (big_session(store_url, mb, text=True), mb * 16 / 2000)
        print(f"a session of {mb} MB of text stored in {time.monotonic() - made:.0f} s")
    print(
        f"{args.sessions:,} sessions, {args.lines:,} indexed lines and two {args.big_mb} MB "
        f"sessions stored in {time.monotonic() - began:.0f} s"
    )
    process, port = serve(workdir, store_url, search_url)
    try:
        client = signed_in(f"http://127.0.0.1:{port}")
        base = timed(lambda: client.get("/healthz"), args.runs)
        print(f"baseline: GET /healthz {'':<24} p50 {base[0]:6.1f} ms  p95 {base[1]:6.1f} ms")
        for path in (
            "/sessions",
            "/sessions?operator=bob",
            "/sessions?target=web07&sort=target&order=asc",
            "/sessions?page=200",
            "/sessions?status=tampered",
            "/search?q=rm+-rf",
            f"/sessions/{some}",
        ):
            answer = client.get(path)
            assert answer.status_code == 200, (path, answer.status_code)
            p50, p95 = timed(lambda path=path: client.get(path), args.runs)  # type: ignore[misc]
            print(
                f"GET {path:<44} p50 {p50:6.1f} ms  p95 {p95:6.1f} ms  "
                f"({p50 / base[0]:5.1f}x /healthz)"
            )
        least = stream_cast(client, smallest, "the smallest session (baseline)")
        for kind, session in big.items():
            stream_cast(client, session, kind, least)
        random = f"{args.big_mb} MB of random bytes"
        framed_[random] = (big[random], args.big_mb * 16 / 2000)
        first_frames(f"http://127.0.0.1:{port}", framed_, smallest)
    finally:
        process.terminate()
        process.wait(timeout=30)


if __name__ == "__main__":
    main()
