"""Apache Kafka (KRaft) on loopback, from the jars Maven Central serves.

``tests/kafka/pom.xml`` names the broker, its tools and the logging binding;
:func:`libs` turns it into a folder of jars with ``mvn
dependency:copy-dependencies``, once per version, cached outside the work tree
(``$XDG_CACHE_HOME/sshtrail/kafka-VERSION``, or ``SSHTRAIL_TEST_KAFKA_LIBS``).

:class:`KafkaCluster` formats storage and starts one combined broker+controller
node (most tests) or three (replication factor 3, ``min.insync.replicas=2``:
the fault tests). Each node logs to the cluster's folder, is ready when every
node is registered and the offsets topic can be used, and can be stopped,
killed (``kill -9``), frozen (SIGSTOP) and started again on its own data.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Protocol

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from sshtrail.broker import free_port
from sshtrail.parentdeath import stop_with_parent
from tests.support.knobs import knob

POM: Final = Path(__file__).resolve().parent.parent / "kafka" / "pom.xml"


class Broker(Protocol):
    """What the pipeline's tests need of a broker: where to connect."""

    @property
    def bootstrap_servers(self) -> str: ...


class KafkaUnavailable(Exception):
    """Kafka's jars cannot be had or a node did not come up; the message says why."""


def version() -> str:
    """The Kafka version ``tests/kafka/pom.xml`` pins."""
    found = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", POM.read_text())
    if found is None:
        raise KafkaUnavailable(f"{POM} names no <kafka.version>")
    return found.group(1)


def libs() -> Path:
    """The folder of Kafka's jars, fetched through Maven the first time.

    Workers of one test run may ask at once: a lock file makes one of them fetch
    while the others wait, and a marker written last says the folder is whole.
    """
    configured = knob("KAFKA_LIBS", "")
    if configured:
        return Path(configured)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    home = cache / "sshtrail" / f"kafka-{version()}"
    folder, marker = home / "libs", home / "complete"
    if marker.exists():
        return folder
    if shutil.which("mvn") is None:
        raise KafkaUnavailable("Maven is not installed (apt-get install maven openjdk-17-jdk)")
    home.mkdir(parents=True, exist_ok=True)
    with (home / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists():
            return folder
        shutil.rmtree(folder, ignore_errors=True)
        fetched = subprocess.run(
            [
                "mvn",
                "-q",
                "-B",
                "-f",
                str(POM),
                "dependency:copy-dependencies",
                f"-DoutputDirectory={folder}",
                "-DincludeScope=runtime",
            ],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if fetched.returncode != 0:
            tail = (fetched.stdout + fetched.stderr).strip().splitlines()[-5:]
            raise KafkaUnavailable("mvn could not fetch Kafka's jars: " + " | ".join(tail))
        marker.write_text(version() + "\n")
    return folder


def _java() -> str:
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not java or not Path(java).exists():
        raise KafkaUnavailable("no Java runtime (apt-get install openjdk-17-jdk-headless)")
    return java


#: A JVM small enough for three of them and a test run on two cores.
JVM_OPTIONS: Final = (
    "-Xms128m",
    "-Xmx512m",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:ActiveProcessorCount=2",
    "-Djava.awt.headless=true",
)


def run_tool(main_class: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run one of Kafka's command-line tools (its main class) with the cached jars."""
    return subprocess.run(
        [_java(), "-Xmx256m", "-cp", f"{libs()}/*", main_class, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


#: Ports the nodes listen on are taken below the kernel's range for outgoing
#: connections (32768-60999 on Linux): a port found free there can be given to some
#: client's connection before the JVM, seconds later, binds it ("Unable to start
#: acceptor"), as happened with three test workers starting clusters at once.
_LISTEN_PORTS: Final = (20000, 32000)


def listen_port() -> int:
    """A loopback port nothing listens on, outside the range of outgoing connections."""
    for _ in range(200):
        port = random.randint(*_LISTEN_PORTS)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    return free_port()


def _cluster_id() -> str:
    """A random cluster id as ``kafka-storage random-uuid`` makes one: 16 bytes in
    base64url, never starting with ``-`` (the tool would read it as an option)."""
    while True:
        made = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not made.startswith("-"):
            return made


@dataclass
class Node:
    """One combined broker+controller process of the cluster."""

    node_id: int
    port: int
    controller_port: int
    folder: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class KafkaCluster:
    """``nodes`` KRaft nodes on loopback ports, their data and logs under ``folder``."""

    def __init__(self, folder: Path, nodes: int = 1, **broker_config: str) -> None:
        self.folder = folder
        self.replication = min(nodes, 3)
        self.nodes = [
            Node(i + 1, listen_port(), listen_port(), folder / f"node{i + 1}") for i in range(nodes)
        ]
        self._extra = broker_config
        self._cluster_id = _cluster_id()
        #: Once started, the ports are what clients know: never chosen again.
        self._started = False

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(node.address for node in self.nodes)

    def node(self, node_id: int) -> Node:
        return self.nodes[node_id - 1]

    # -- lifecycle -----------------------------------------------------------

    def start(self, timeout: float = 90) -> None:
        """Format every node's storage, start them all, and wait until the cluster serves.

        Nothing to do when every node runs already (a module's cluster, per test)."""
        if all(node.running for node in self.nodes):
            return
        voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in self.nodes)
        formatting = []
        for node in self.nodes:
            node.folder.mkdir(parents=True, exist_ok=True)
            self._write_config(node, voters)
            formatting.append(
                subprocess.Popen(
                    [
                        _java(),
                        "-Xmx256m",
                        f"-Dlog4j2.configurationFile={node.folder / 'log4j2.properties'}",
                        "-cp",
                        f"{libs()}/*",
                        "kafka.tools.StorageTool",
                        "format",
                        "--ignore-formatted",
                        "-t",
                        self._cluster_id,
                        "-c",
                        str(node.folder / "server.properties"),
                    ],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                )
            )
        for node, formatter in zip(self.nodes, formatting, strict=True):
            out, _ = formatter.communicate(timeout=120)
            if formatter.returncode != 0:
                raise KafkaUnavailable(
                    f"formatting node {node.node_id} failed: {out.decode(errors='replace')[-500:]}"
                )
        for attempt in range(3):
            for node in self.nodes:
                self.start_node(node.node_id, wait=False)
            try:
                self.wait_ready(timeout)
                break
            except KafkaUnavailable:
                if self._started or attempt == 2 or not self._port_taken():
                    raise
            # Another process took a port between choosing and binding it: the ports
            # are in the configuration only (static voters), so new ones will do.
            self.kill()
            for node in self.nodes:
                node.port, node.controller_port = listen_port(), listen_port()
            voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in self.nodes)
            for node in self.nodes:
                self._write_config(node, voters)
        self._started = True
        self._wait_for_the_group_coordinator(timeout)

    def _port_taken(self) -> bool:
        """Whether a node's log says it could not bind its port."""
        for node in self.nodes:
            with contextlib.suppress(OSError):
                text = (node.folder / "server.log").read_text(errors="replace")
                if "Unable to start acceptor" in text or "Address already in use" in text:
                    return True
        return False

    def _wait_for_the_group_coordinator(self, timeout: float) -> None:
        """Until a group can be described: the first group request creates and loads
        ``__consumer_offsets``, answered NOT_COORDINATOR meanwhile; tests that commit
        at once would meet that instead of the broker they mean to test."""
        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers, "log_level": 2})
        deadline = time.monotonic() + timeout
        while True:
            try:
                admin.describe_consumer_groups(["sshtrail-harness-probe"])[
                    "sshtrail-harness-probe"
                ].result(5)
                return
            except (KafkaException, TimeoutError) as exc:  # not loaded yet, or slow to say so
                if time.monotonic() > deadline:
                    raise KafkaUnavailable(
                        f"Kafka's group coordinator was not ready within {timeout:.0f}s: {exc}"
                    ) from None
                time.sleep(0.2)

    def start_node(self, node_id: int, wait: bool = True, timeout: float = 60) -> None:
        """Start one node on the data it has (first start, or after a stop or a kill)."""
        node = self.node(node_id)
        if node.running:
            return
        log = (node.folder / "stdout.log").open("ab")
        node.process = subprocess.Popen(
            [
                _java(),
                *JVM_OPTIONS,
                f"-Dlog4j2.configurationFile={node.folder / 'log4j2.properties'}",
                f"-Dkafka.logs.dir={node.folder}",
                "-cp",
                f"{libs()}/*",
                "kafka.Kafka",
                str(node.folder / "server.properties"),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=stop_with_parent,  # noqa: PLW1509
        )
        log.close()
        if wait:
            self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 90) -> None:
        """Return once every running node is registered and answers metadata requests."""
        deadline = time.monotonic() + timeout
        running = {n.node_id for n in self.nodes if n.running}
        last = ""
        while time.monotonic() < deadline:
            for node in self.nodes:
                if node.process is not None and node.process.poll() is not None:
                    raise KafkaUnavailable(
                        f"Kafka node {node.node_id} exited with status "
                        f"{node.process.returncode} while starting; {self.log_tail(node.node_id)}"
                    )
            try:
                admin = AdminClient({"bootstrap.servers": self.bootstrap_servers, "log_level": 2})
                brokers = admin.list_topics(timeout=2).brokers
                if running <= set(brokers):
                    return
                last = f"brokers registered: {sorted(brokers)}"
            except KafkaException as exc:
                last = str(exc)
            time.sleep(0.2)
        raise KafkaUnavailable(
            f"Kafka ({self.bootstrap_servers}) was not ready within {timeout:.0f}s ({last})"
        )

    def stop_node(self, node_id: int, timeout: float = 60) -> int | None:
        """A clean shutdown (SIGTERM: leadership moved away first), as a rolling restart does."""
        node = self.node(node_id)
        process, node.process = node.process, None
        if process is None:
            return None
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGCONT)
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return process.returncode

    def kill_node(self, node_id: int) -> None:
        """``kill -9``: the process dies with whatever it had not written."""
        node = self.node(node_id)
        process, node.process = node.process, None
        if process is not None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            process.wait()

    def freeze_node(self, node_id: int) -> None:
        """SIGSTOP: alive to the network, answering nothing (a long GC, a hung disk)."""
        process = self.node(node_id).process
        assert process is not None, f"node {node_id} is not running"
        process.send_signal(signal.SIGSTOP)

    def thaw_node(self, node_id: int) -> None:
        process = self.node(node_id).process
        assert process is not None, f"node {node_id} is not running"
        process.send_signal(signal.SIGCONT)

    def stop(self, timeout: float = 30) -> int | None:
        """Stop every node at once (SIGTERM, then SIGKILL after ``timeout``).

        All together: stopped one by one, the last controllers wait for a quorum
        that has gone. Returns 0 when each node shut down cleanly, else the first
        other exit status (None when nothing ran).
        """
        running = [n for n in self.nodes if n.process is not None]
        for node in running:
            assert node.process is not None
            with contextlib.suppress(ProcessLookupError):
                node.process.send_signal(signal.SIGCONT)
                node.process.terminate()
        statuses = []
        deadline = time.monotonic() + timeout
        for node in running:
            process, node.process = node.process, None
            assert process is not None
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            # The JVM exits with 128 + SIGTERM after its shutdown hooks ran.
            statuses.append(
                0 if process.returncode in (0, 128 + signal.SIGTERM) else process.returncode
            )
        if not statuses:
            return None
        return next((status for status in statuses if status != 0), 0)

    def kill(self) -> None:
        """``kill -9`` of every node: the whole cluster crashes (its data stays)."""
        for node in self.nodes:
            self.kill_node(node.node_id)

    def __enter__(self) -> KafkaCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what tests ask ------------------------------------------------------

    def leader_of(self, topic: str, partition: int, timeout: float = 30) -> int:
        """The node id leading ``topic``'s ``partition`` now (-1: none at the moment).

        A broker asked just after the topic was made may not know its partitions
        yet: asked again until one does.
        """
        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers, "log_level": 2})
        deadline = time.monotonic() + timeout
        while True:
            try:
                found = admin.list_topics(topic, timeout=10).topics[topic].partitions
            except KafkaException:
                found = {}
            if partition in found:
                leader: int = found[partition].leader
                return leader
            if time.monotonic() > deadline:
                raise KafkaUnavailable(f"no broker knows partition {partition} of {topic}")
            time.sleep(0.1)

    def pids(self) -> list[int]:
        return [n.process.pid for n in self.nodes if n.process is not None and n.running]

    def log_tail(self, node_id: int, lines: int = 3) -> str:
        log = self.node(node_id).folder / "server.log"
        with contextlib.suppress(OSError):
            wanted = [
                line
                for line in log.read_text(errors="replace").splitlines()
                if " ERROR " in line or " FATAL " in line
            ]
            if wanted:
                return "its last errors: " + " | ".join(wanted[-lines:])
        return f"see {log}"

    # -- configuration -------------------------------------------------------

    def _write_config(self, node: Node, voters: str) -> None:
        replicas = self.replication
        settings = {
            "process.roles": "broker,controller",
            "node.id": str(node.node_id),
            "controller.quorum.voters": voters,
            "listeners": (
                f"PLAINTEXT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}"
            ),
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{node.port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(node.folder / "data"),
            "num.partitions": "3",
            "default.replication.factor": str(replicas),
            "min.insync.replicas": str(min(2, replicas)),
            "offsets.topic.replication.factor": str(replicas),
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": str(replicas),
            "transaction.state.log.min.isr": str(min(2, replicas)),
            "unclean.leader.election.enable": "false",
            # Tests start groups constantly: no three-second wait for more members.
            "group.initial.rebalance.delay.ms": "0",
            # KIP-848 groups: the session timeout is the broker's; allow the short
            # timeouts the fault tests use (classic groups already allow 6 s).
            "group.consumer.min.session.timeout.ms": "6000",
            "group.consumer.session.timeout.ms": "10000",
            "group.consumer.min.heartbeat.interval.ms": "500",
            "group.consumer.heartbeat.interval.ms": "1000",
            "auto.create.topics.enable": "false",
            **self._extra,
        }
        (node.folder / "server.properties").write_text(
            "".join(f"{key}={value}\n" for key, value in settings.items())
        )
        (node.folder / "log4j2.properties").write_text(
            "status = warn\n"
            "appender.file.type = File\n"
            "appender.file.name = file\n"
            f"appender.file.fileName = {node.folder / 'server.log'}\n"
            "appender.file.layout.type = PatternLayout\n"
            "appender.file.layout.pattern = [%d] %p %m (%c)%n\n"
            "rootLogger.level = INFO\n"
            "rootLogger.appenderRef.file.ref = file\n"
            "logger.kafka.name = kafka\nlogger.kafka.level = INFO\n"
            "logger.org.name = org.apache.kafka\nlogger.org.level = INFO\n"
        )
