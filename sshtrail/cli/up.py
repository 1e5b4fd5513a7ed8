"""``sshtrail up``: start the local stack in one process tree, stop it with Ctrl-C."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import msgspec

from sshtrail import demo, migrate, stackenv
from sshtrail.broker import EmbeddedBroker
from sshtrail.cli.broker import start_broker
from sshtrail.cli.children import Children
from sshtrail.commandkit.signals import stop_on_signals
from sshtrail.db import shown_url
from sshtrail.errors import BrokerError, ConfigError
from sshtrail.kafka.adapters import topic_reader
from sshtrail.kafka.admin import Topics, kafka_admin, settle_topics
from sshtrail.kafka.layout import TopicsRefused, summary
from sshtrail.keyfiles import ensure_ed25519
from sshtrail.settings import CONFIG_ENV, ENV_PREFIX, Settings, settings_file
from sshtrail.statedir import secure

#: How long a stopping stack waits for the consumer groups to read what the
#: gateway published last.
DRAIN_S = 15.0


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.kafka is not None:
        settings = _with_kafka(settings, args.kafka)
    state = settings.state_path.resolve()
    state.mkdir(parents=True, exist_ok=True)
    secure(state)
    recorded = _record_environment(state, args.config)
    config: Path | None = Path(args.config).resolve() if args.config else None
    trial: demo.Demo | None = None
    if args.demo:
        settings, trial = demo.prepare(settings)
        config = trial.config
    logs = None if args.verbose else state / "logs"
    children = Children(config, logs, _say)
    with stop_on_signals() as stop:
        broker: EmbeddedBroker | None = None
        started = False  # whether the consumer groups run, and have something to drain
        try:
            broker = _start_infrastructure(settings, from_option=args.kafka is not None)
            if trial is not None:
                _start_demo_target(children, settings, trial)
            started = True
            # The consumers take only chunks the gateway's recording key signed
            # (sshtrail/provenance.py) and read it at start: made before them.
            ensure_ed25519(
                settings.state_file(settings.gateway.signing_key, "gateway/recording_ed25519_key"),
                "sshtrail recording signing key",
            )
            # A static member id: restarted, it takes its partitions back at once.
            parts = ["store", "index"] + (["alert"] if settings.alerts.rules else [])
            for part in parts:
                member_id = f"{settings.instance}-up-{part}"
                children.start(part, part, "--instance-id", member_id, restart=True)
            _say(
                "store",
                f"consumer group {settings.consumer.store_group} writes sessions to the database",
            )
            _say(
                "index",
                f"consumer group {settings.consumer.index_group} indexes them for search in "
                f"{shown_url(settings.search_url)}",
            )
            if settings.alerts.rules:
                _say(
                    "alert",
                    f"consumer group {settings.consumer.alert_group} matches every command "
                    f"against the Sigma rules in {settings.alerts.rules}",
                )
            children.start("gateway", "gateway", port=settings.gateway.port, restart=True)
            _say(
                "gateway",
                f"{settings.gateway.listen}:{settings.gateway.port}, operators log in as "
                f"OPERATOR@TARGET; {len(settings.operators)} operators, "
                f"{len(settings.targets)} targets configured",
            )
            children.start("web", "web", port=settings.web.port, restart=True)
            scheme = "https" if settings.web.tls_cert else "http"
            console = f"{scheme}://{settings.web.listen}:{settings.web.port}/"
            _say("web", f"{console} auditors' console ({len(settings.auditors)} auditors)")
            _say("state", str(state))
            _say("settings", recorded)
            if logs is not None:
                _say("logs", f"{logs}/ (--verbose shows them here)")
            if trial is not None:
                _say_how_to_try(settings, trial, console)
            _say("ready", "press Ctrl-C to stop")
            while not stop.wait(0.5):
                children.check()
                if broker is not None and broker.poll() is not None:
                    raise BrokerError(
                        "the embedded broker exited unexpectedly; see "
                        f"{settings.broker_data_dir / 'broker.log'}"
                    )
        finally:
            _stop(children, settings, broker, drain=started)
    _say("stopped", f"on {stop.name}; state kept in {state}")
    return 0


def _record_environment(state: Path, option: str | None) -> str:
    """Leave the variables this stack runs with (``--kafka`` among them, set above)
    and the settings file it read, for commands run next to it (sshtrail/stackenv.py);
    returns what to say about it."""
    variables = {
        var: value
        for var, value in os.environ.items()
        if var.startswith(ENV_PREFIX) and var != CONFIG_ENV
    }
    path = stackenv.write(state, settings_file(option, os.environ), variables)
    listed = ", ".join(sorted(variables)) or "no SSHTRAIL_* variables"
    return f"{listed} recorded in {path} for the commands run here"


def _start_demo_target(children: Children, settings: Settings, trial: demo.Demo) -> None:
    children.start(
        "demo target",
        "demo-target",
        "--port",
        str(trial.port),
        "--host-key",
        str(trial.target_host_key),
        "--authorized-keys",
        str(trial.authorized_keys),
        port=trial.port,
    )
    _say(
        "demo",
        f"target {demo.NAME!r}: a login shell as {_user(settings)} on 127.0.0.1:{trial.port}",
    )


def _say_how_to_try(settings: Settings, trial: demo.Demo, console: str) -> None:
    demo.trust_gateway(settings, trial)
    _say("try", "this, then type a few commands and exit:")
    print(demo.ssh_command(settings, trial), flush=True)
    if demo.sftp_server() is not None:
        _say("files", "sftp (or scp with the same options) goes the same way:")
        print(demo.sftp_command(settings, trial), flush=True)
    else:
        _say("files", "sftp and scp need OpenSSH's sftp-server on this machine")
    _say(
        "console",
        f"open {console} and sign in as {demo.AUDITOR!r} with password "
        f"{trial.auditor_password} (new on every run)",
    )


def _with_kafka(settings: Settings, servers: str) -> Settings:
    """``settings`` on the Kafka of ``--kafka``, which the stack's children get too."""
    if not servers.strip():
        raise ConfigError("give HOST:PORT[,HOST:PORT...]", key="--kafka")
    try:
        kafka = msgspec.structs.replace(settings.kafka, bootstrap_servers=servers.strip())
    except ValueError as exc:
        raise ConfigError(str(exc), key="--kafka") from None
    # The children read the settings file and the environment, where a variable
    # outranks the file: they use these servers too, with or without --demo.
    os.environ[f"{ENV_PREFIX}KAFKA__BOOTSTRAP_SERVERS"] = kafka.bootstrap_servers
    return msgspec.structs.replace(settings, kafka=kafka)


def _stop(
    children: Children, settings: Settings, broker: EmbeddedBroker | None, drain: bool
) -> None:
    """The gateway first (its last sessions end and are published), then the groups once
    they have read everything (or after a while), then the rest."""
    children.stop("gateway")
    if drain and (broker is None or broker.poll() is None):
        drained = _wait_drained(settings, DRAIN_S)
        if not drained:
            _say(
                "stopping",
                f"the consumer groups did not catch up within {DRAIN_S:.0f} s; they "
                "continue from where they are at the next start",
            )
    children.stop_all()
    if broker is not None:
        broker.stop()


def _wait_drained(settings: Settings, timeout: float) -> bool:
    """Whether both consumer groups committed up to the log end within ``timeout``."""
    groups = settings.consumer_groups
    deadline = time.monotonic() + timeout
    try:
        admin = kafka_admin(settings, timeout=5.0)
        reader = topic_reader(settings, "drain", timeout=5.0)
    except BrokerError:
        return False
    try:
        topic = settings.kafka.topic
        while True:
            ends = {p: reader.watermarks(topic, p)[1] for p in reader.partitions(topic)}
            behind = 0
            for group in groups:
                committed = admin.group(group, topic).committed
                behind += sum(max(end - committed.get(p, 0), 0) for p, end in ends.items())
            if not behind:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.2)
    except BrokerError:
        return False
    finally:
        reader.close()


def _start_infrastructure(settings: Settings, from_option: bool) -> EmbeddedBroker | None:
    broker = None
    if settings.embedded_broker:
        broker = start_broker(settings.broker.host, settings.broker.port, settings.broker_data_dir)
        _say(
            "broker",
            f"embedded, {broker.bootstrap_servers}, data in {settings.broker_data_dir.resolve()}",
        )
    elif from_option:
        _say(
            "kafka",
            f"{settings.kafka.bootstrap_servers}, no embedded broker (from --kafka; lag, "
            "watch and the other commands read kafka.bootstrap_servers)",
        )
    else:
        _say("kafka", f"{settings.kafka.bootstrap_servers}, no embedded broker")
    topics = settle_topics(settings)
    _say("topics", _topics_line(topics))
    for warning in topics.warnings:
        _say("warning", f"{warning}; up goes on")
    if topics.refusals:
        raise TopicsRefused(topics.refusals, settings.bootstrap_servers, "up started nothing")
    migrate.upgrade(settings.database_url)
    revision = migrate.current_revision(settings.database_url)
    _say("database", f"{shown_url(settings.database_url)} at schema {revision}")
    return broker


def _topics_line(topics: Topics) -> str:
    """The sessions topic as found, where dead letters, requests, the access log's
    heads and (with alerts.rules set) alerts go, what was created."""
    sessions, dead_letters, requests, heads, *alerts = topics.found
    line = f"{sessions.name} ({summary(sessions)}), dead letters in {dead_letters.name}, "
    line += f"requests in {requests.name}, access-log heads in {heads.name}"
    line += "".join(f", alerts in {topic.name}" for topic in alerts)
    if len(topics.created) == len(topics.found):
        line += " (created)"
    elif topics.created:
        line += f" (created {', '.join(topics.created)})"
    return line


def _user(settings: Settings) -> str:
    return next(t.user for t in settings.targets if t.name == demo.NAME)


def _say(part: str, what: str) -> None:
    print(f"{part:>9}  {what}", file=sys.stdout, flush=True)
