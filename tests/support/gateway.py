"""A real ``sshtrail gateway`` process in front of the test sshd, and what it published."""

from __future__ import annotations

import json
import signal
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh
from asyncssh.misc import _ACMWrapper
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from sshtrail.broker import free_port
from sshtrail.wire import Chunk, decode_chunk
from tests.support.knobs import knob
from tests.support.sshd import SshdTarget, isolated, keygen, ssh_argv
from tests.support.waiting import wait_for

#: A spool record's header: payload length, its crc32, key length (big-endian).
_SPOOL_HEADER = struct.Struct(">IIH")


def toml_value(value: object) -> str:
    return json.dumps(value)  # JSON strings, numbers, booleans and arrays are valid TOML


def toml_table(header: str, **keys: object) -> str:
    """A table of a settings file, ``header`` (``[web]``, ``[[rule]]`` ...) and its
    ``keys`` in the order given, each line ended."""
    lines = [header, *(f"{key} = {toml_value(value)}" for key, value in keys.items())]
    return "\n".join(lines) + "\n"


@dataclass
class GatewayProcess:
    """Configuration, a child process, and the ssh command lines that go through it."""

    workdir: Path
    servers: str
    sshd: SshdTarget
    topic: str = field(default_factory=lambda: f"sessions.{uuid.uuid4().hex[:10]}")
    port: int = field(default_factory=free_port)
    extra: str = ""  # more keys of [gateway]
    kafka_extra: str = ""  # more keys of [kafka]
    operator_extra: str = ""  # more keys for the operator alice
    config_tail: str = ""  # more tables at the end of the settings file
    alice_targets: Sequence[str] = ()  # targets of config_tail that alice may use
    cli_options: Sequence[str] = ()
    #: Also create ``<topic>.dlq``, for consumer groups reading the topic.
    dead_letters: bool = False
    #: ``instance`` of its settings: what its answers on the control topic name.
    instance: str = "gw-test"
    #: Its control topic (created with it); gateways sharing one name it the same.
    control_topic: str = ""
    #: Replicas of each topic it creates (3 on a three-node cluster).
    replication_factor: int = 1
    #: ``gateway.echo_window_ms``: typed bytes not echoed within it are masked.
    echo_window_ms: int = 300
    #: ``gateway.workers``: one process unless a test asks for more (the setting's
    #: default, one per core, would make every test's shape depend on the machine);
    #: ``SSHTRAIL_TEST_GATEWAY_WORKERS=2`` runs every suite's gateways with two.
    workers: int = field(default_factory=lambda: int(knob("GATEWAY_WORKERS", "1")))
    process: subprocess.Popen[str] | None = None
    output: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.operator_key = keygen(self.workdir / "alice_ed25519", "alice@test")
        self.stranger_key = keygen(self.workdir / "mallory_ed25519", "mallory@test")
        self.known_hosts = self.workdir / "known_hosts"
        admin = AdminClient({"bootstrap.servers": self.servers})
        self.control_topic = self.control_topic or self.topic + ".control"
        names = [self.topic, self.topic + ".dlq"] if self.dead_letters else [self.topic]
        existing = admin.list_topics(timeout=15).topics
        names += [self.control_topic] if self.control_topic not in existing else []
        wanted = [
            NewTopic(name, 3, self.replication_factor) for name in names if name not in existing
        ]
        for future in admin.create_topics(wanted).values() if wanted else ():
            future.result(15)

    @property
    def control_key(self) -> Path:
        """The key requests are signed with (``sshtrail terminate`` with these settings)."""
        return self.workdir.parent / "control_ed25519_key"

    @property
    def config(self) -> Path:
        return self.workdir / "sshtrail.toml"

    def write_config(self) -> None:
        pub = self.operator_key.with_suffix(".pub").read_text().strip()
        host_pub = " ".join(self.sshd.host_key.with_suffix(".pub").read_text().split()[:2])
        wrong_host = " ".join(self.stranger_key.with_suffix(".pub").read_text().split()[:2])
        self.config.write_text(
            f"""
state_dir = {toml_value(str(self.workdir / "state"))}
instance = {toml_value(self.instance)}
[kafka]
bootstrap_servers = {toml_value(self.servers)}
topic = {toml_value(self.topic)}
{self.kafka_extra}
[gateway]
listen = "127.0.0.1"
port = {self.port}
echo_window_ms = {self.echo_window_ms}
workers = {self.workers}
{self.extra}
[control]
topic = {toml_value(self.control_topic)}
signing_key = {toml_value(str(self.control_key))}
[[operators]]
name = "alice"
keys = [{toml_value(pub)}]
targets = {toml_value(["t1", "imposter", "fwd", *self.alice_targets])}
{self.operator_extra}
[[operators]]
name = "bob"
keys = [{toml_value(pub)}]
targets = []
[[targets]]
name = "t1"
host = "127.0.0.1"
port = {self.sshd.port}
user = {toml_value(self.sshd.user)}
key = {toml_value(str(self.sshd.client_key))}
host_keys = [{toml_value(host_pub)}]
accept_env = ["LANG", "LC_*", "SSHTRAIL_TEST_*"]
[[targets]]
name = "imposter"
host = "127.0.0.1"
port = {self.sshd.port}
user = {toml_value(self.sshd.user)}
key = {toml_value(str(self.sshd.client_key))}
host_keys = [{toml_value(wrong_host)}]
[[targets]]
name = "fwd"
host = "127.0.0.1"
port = {self.sshd.port}
user = {toml_value(self.sshd.user)}
key = {toml_value(str(self.sshd.client_key))}
host_keys = [{toml_value(host_pub)}]
allow_forwarding = true
[[targets]]
name = "secret"
host = "127.0.0.1"
port = {self.sshd.port}
key = {toml_value(str(self.sshd.client_key))}
host_keys = [{toml_value(host_pub)}]
{self.config_tail}
"""
        )

    def start(self, timeout: float = 30, *, admitting: bool = True) -> None:
        """Start the gateway; return once it listens and, with ``admitting``, has read
        the control topic to its end (it lets no operator in before: operator locks)."""
        self.write_config()
        argv = [sys.executable, "-m", "sshtrail", "--config", str(self.config), *self.cli_options]
        self.process = subprocess.Popen(
            [*argv, "gateway"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        # Read its output all along: a full pipe would block the gateway's loop.
        self._ready = threading.Event()
        self._pump = threading.Thread(target=self._read_output, daemon=True)
        self._pump.start()
        # Ready is also set when its output ends: then it never said it listens.
        if not self._ready.wait(timeout) or not any(
            line.startswith("gateway host key") for line in self.output
        ):
            self._pump.join(5)
            raise AssertionError(f"gateway did not start: {''.join(self.output)}")
        self._fetch_host_key()
        if admitting:
            wait_for(
                lambda: (
                    sum("control topic read to its end" in line for line in self.output)
                    >= self.workers
                ),
                timeout=timeout,
                what="the gateway to read the operator locks (control topic)",
            )

    def _read_output(self) -> None:
        assert self.process is not None
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            if line.startswith("gateway host key"):
                self._ready.set()
        self._ready.set()

    def _fetch_host_key(self) -> None:
        pub = (self.workdir / "state" / "gateway" / "ssh_host_ed25519_key.pub").read_text()
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {' '.join(pub.split()[:2])}\n")

    @property
    def spool_dir(self) -> Path:
        return self.workdir / "state" / "spool"

    def worker_spool_dir(self, index: int) -> Path:
        """Worker ``index``'s spool (``gateway.workers`` > 1); worker 0 keeps the one
        a single process uses."""
        return self.spool_dir if index == 0 else self.spool_dir / f"worker-{index}"

    def spooled(self) -> bytes:
        """Every byte in the spool's segments (chunks hold output bytes as they were)."""
        return b"".join(p.read_bytes() for p in sorted(self.spool_dir.glob("segment-*.log")))

    def spooled_chunks(self, directory: Path | None = None) -> list[Chunk]:
        """The chunks in the spool's segments (or a copy of them in ``directory``), in
        spool order, read as ``producer/spool.py`` documents its records; a torn last
        record (a kill mid-write) ends the reading."""
        chunks = []
        for segment in sorted((directory or self.spool_dir).glob("segment-*.log")):
            data, at = segment.read_bytes(), 0
            while at + _SPOOL_HEADER.size <= len(data):
                length, _crc, key_length = _SPOOL_HEADER.unpack_from(data, at)
                start = at + _SPOOL_HEADER.size
                if start + length > len(data):
                    break
                chunks.append(decode_chunk(data[start + key_length : start + length]))
                at = start + length
        return chunks

    def spool_pending(self) -> int:
        """Bytes spooled that Kafka has not acknowledged (as last saved to disk)."""
        segments = sorted(self.spool_dir.glob("segment-*.log"))
        end = max((int(p.stem.split("-")[1]) + p.stat().st_size for p in segments), default=0)
        acked_file = self.spool_dir / "acked"
        acked = int.from_bytes(acked_file.read_bytes()[:8], "big") if acked_file.exists() else 0
        return max(end - acked, 0)

    @property
    def signing_key(self) -> bytes:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        path = self.workdir / "state" / "gateway" / "recording_ed25519_key.pub"
        key = serialization.load_ssh_public_key(path.read_bytes())
        assert isinstance(key, Ed25519PublicKey)
        return key.public_bytes_raw()

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 60) -> str:
        assert self.process is not None
        self.process.send_signal(signum)
        self.process.wait(timeout)
        self._pump.join(timeout)
        return "".join(self.output)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()
        self._pump.join(10)

    def ssh(
        self,
        login: str,
        *remote: str,
        key: Path | None = None,
        options: Sequence[str] = (),
        tty: bool = False,
    ) -> list[str]:
        """argv of the real OpenSSH client going through this gateway."""
        return ssh_argv(
            f"{login}@127.0.0.1",
            self.port,
            key or self.operator_key,
            self.known_hosts,
            *remote,
            options=options,
            tty=tty,
        )

    def file_client(self, program: str, login: str, *arguments: str) -> list[str]:
        """argv of OpenSSH's ``sftp`` or ``scp`` through this gateway as ``login`` (given
        as ``-o User=``: the colon in ``operator:target`` would read as a path)."""
        return [
            program,
            *isolated(self.operator_key, self.known_hosts),
            "-o",
            f"User={login}",
            "-o",
            f"Port={self.port}",
            *arguments,
        ]

    def connect(
        self, login: str = "alice:t1", **options: Any
    ) -> _ACMWrapper[asyncssh.SSHClientConnection]:
        """``asyncssh.connect`` to this gateway as ``login`` with the operator's key, for
        ``async with``; ``options`` are asyncssh's and win (``client_keys``, ``local_addr``)."""
        settings: dict[str, Any] = {
            "username": login,
            "client_keys": [str(self.operator_key)],
            "known_hosts": str(self.known_hosts),
            "config": None,
            "agent_path": None,
        }
        return asyncssh.connect("127.0.0.1", self.port, **{**settings, **options})


Published = dict[str, list[tuple[int, int, Chunk]]]


def published(
    servers: str,
    topic: str,
    complete: int = 1,
    timeout: float = 120,
    until: Callable[[Published], bool] | None = None,
) -> Published:
    """Every message on ``topic``, decoded, grouped by key: (partition, offset, chunk).

    Waits until ``complete`` sessions have their end chunk and no gap (or until
    ``until`` says so), then a little longer so duplicates would show too.
    """
    done = until or (lambda found: sum(map(_complete, found.values())) >= complete)
    consumer = Consumer(
        {
            "bootstrap.servers": servers,
            "group.id": f"read-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "fetch.max.bytes": 8 << 20,
            "max.partition.fetch.bytes": 1 << 20,
            # noida-db answers a fetch with all it has (docs/decisions.md)
            "receive.message.max.bytes": 1 << 30,
        }
    )
    partitions = AdminClient({"bootstrap.servers": servers}).list_topics(topic, timeout=10)
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions.topics[topic].partitions])
    sessions: dict[str, list[tuple[int, int, Chunk]]] = defaultdict(list)
    deadline = time.monotonic() + timeout
    done_at: float | None = None
    while time.monotonic() < deadline and (done_at is None or time.monotonic() < done_at + 0.5):
        for message in consumer.consume(1000, 0.2):
            assert message.error() is None, message.error()
            value, key = message.value(), message.key()
            assert value is not None
            assert key is not None
            chunk = decode_chunk(value)
            assert key.decode() == str(chunk.session_id)
            sessions[key.decode()].append((message.partition() or 0, message.offset() or 0, chunk))
        if done_at is None and done(sessions):
            done_at = time.monotonic()
    consumer.close()
    return dict(sessions)


def _complete(entries: list[tuple[int, int, Chunk]]) -> bool:
    seqs = sorted({chunk.seq for _, _, chunk in entries})
    ended = any(chunk.end is not None for _, _, chunk in entries)
    return ended and seqs == list(range(len(seqs)))


def rss_kib(pid: int) -> int | None:
    """A process's resident memory in KiB; None once it has exited (no VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return None
