"""The one settings object of a process: TOML file, then ``SSHTRAIL_*`` environment.

Read once at start-up by :func:`load_settings`, validated there, and passed to
whatever needs it -- never a module global. Every error names the key and the
place it came from (file path or environment variable).

Why one module of more than 400 lines: it is the schema of the one
configuration file, table by table, each key with the ``#:`` comment that
``sshtrail/settings_doc.py`` reads from this module's source to write the
reference in docs/operations.md; split, the reference would lose its one
source. Loading (the last hundred lines) is bound to the schema: an error
walks its types to name the key, its choices and where its value came from.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import typing
import urllib.parse
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import msgspec

from sshtrail import stackenv
from sshtrail.durations import parse_duration
from sshtrail.errors import ConfigError
from sshtrail.passwords import well_formed
from sshtrail.stackenv import Sources

ENV_PREFIX: Final = "SSHTRAIL_"
CONFIG_ENV: Final = "SSHTRAIL_CONFIG"
DEFAULT_FILE: Final = "sshtrail.toml"
DEFAULT_STATE_DIR: Final = "./sshtrail-data"

#: The gateway's default offer to operators' clients (``gateway.ciphers``).
OPERATOR_CIPHERS: Final = (
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "aes128-ctr",
    "aes192-ctr",
    "aes256-ctr",
)

Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]
Positive = Annotated[int, msgspec.Meta(ge=1)]
#: An auditor's scope pattern: names with ``*`` and ``?`` (sshtrail/scope.py).
SCOPE_PATTERN: Final = r"^[A-Za-z0-9._*?-]{1,64}$"
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=249, pattern=r"^[A-Za-z0-9._-]+$")]


class _Section(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of every settings table: unknown keys are errors, not silently ignored."""


class KafkaSettings(_Section):
    """Where sessions are published and read."""

    #: Apache Kafka's ``host:port`` list. Empty means "start and use the embedded
    #: broker" (``sshtrail up``; ``up --kafka`` sets this).
    bootstrap_servers: str = ""
    #: The topic recordings are published to, keyed by session id.
    topic: Name = "sshtrail.sessions"
    #: Where consumers put messages they cannot decode, with their origin in headers.
    dlq_topic: Name = "sshtrail.sessions.dlq"
    #: Partitions of the sessions, dead-letter and control topics when sshtrail
    #: creates them (``up``, ``topics``). An existing sessions or control topic that
    #: holds messages must have this many, or ``up`` and ``topics`` refuse it.
    partitions: Positive = 6
    #: Replicas of each partition when sshtrail creates the topics. 0: 3, or as
    #: many as the cluster has brokers if fewer (a partition cannot have more).
    replication_factor: Annotated[int, msgspec.Meta(ge=0)] = 0
    #: Topic configs for the sessions and dead-letter topics, over the recommended
    #: ones (``min.insync.replicas`` replicas - 1, ``retention.ms`` 30 days);
    #: set when sshtrail creates them, and what ``up`` and ``topics`` check
    #: existing ones against (they never change a topic).
    topic_config: dict[str, str] = msgspec.field(default_factory=dict)
    #: Extra librdkafka properties (TLS, SASL ...), passed through unchanged.
    client: dict[str, str] = msgspec.field(default_factory=dict)
    #: How the gateway compresses recordings on the topic. Terminal output
    #: shrinks 3-5x under lz4; output that is already compressed (archives,
    #: images, encrypted files) does not, and lz4 costs the gateway ~1.6 ms of
    #: CPU per MB of it for nothing (docs/performance.md): "none" for gateways
    #: that mostly relay such bulk data.
    compression: Literal["lz4", "zstd", "snappy", "gzip", "none"] = "lz4"

    def __post_init__(self) -> None:
        for server in filter(None, self.bootstrap_servers.split(",")):
            if not re.fullmatch(r"\[?[A-Za-z0-9.:-]+\]?:\d{1,5}", server.strip()):
                raise ValueError(f"bootstrap server {server!r} is not HOST:PORT")
        if self.topic == self.dlq_topic:
            raise ValueError("topic and dlq_topic must differ")


class BrokerSettings(_Section):
    """The embedded development broker (``sshtrail broker``)."""

    #: Address it listens on; keep it on loopback.
    host: str = "127.0.0.1"
    #: Port it listens on (the default Kafka port).
    port: Port = 9092
    #: Where it keeps its log; empty means ``<state_dir>/broker``.
    data_dir: str = ""


class DatabaseSettings(_Section):
    """The session store."""

    #: SQLAlchemy URL; empty means SQLite at ``<state_dir>/sshtrail.db``.
    url: str = ""


class SearchSettings(_Section):
    """The search index the index group writes and ``sshtrail search`` reads."""

    #: SQLAlchemy URL; empty means SQLite (FTS5, trigram) at ``<state_dir>/search.db``.
    #: A PostgreSQL URL uses pg_trgm; it may be the store's database.
    url: str = ""


class TransfersSettings(_Section):
    """Files moved over SFTP and SCP, as auditors may see them (``sshtrail transfers``)."""

    #: Let ``sshtrail export --transfer N`` take a transferred file's bytes out of
    #: the recording. Off by default: a file copied off a server (a database dump,
    #: a key) is often more sensitive than anything typed; the recording already
    #: holds it, this only decides whether auditors may pull it out whole.
    content_export: bool = False
    #: The largest file ``export --transfer`` writes, in MiB.
    content_max_mb: Annotated[int, msgspec.Meta(ge=1, le=1 << 20)] = 1024


class SpoolSettings(_Section):
    """The gateway's durable buffer between recording and Kafka (docs/operations.md)."""

    #: Where spool segments live; empty means ``<state_dir>/spool``.
    dir: str = ""
    #: Undelivered bytes allowed before ``policy`` applies.
    max_bytes: Positive = 1 << 30
    #: Extra room that sessions already running may still use under ``fail-closed``.
    reserve_bytes: Annotated[int, msgspec.Meta(ge=0)] = 128 << 20
    #: What a full spool does: refuse new sessions, or let them in unrecorded.
    policy: Literal["fail-closed", "fail-open"] = "fail-closed"
    #: How often written chunks are forced to disk at the latest.
    fsync_interval_ms: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 100
    #: Size at which the spool starts a new segment file.
    segment_bytes: Annotated[int, msgspec.Meta(ge=1 << 16)] = 64 << 20
    #: After a broker outage (and on start), publish again what Kafka acknowledged
    #: this many seconds before it: for brokers that can lose acknowledged
    #: writes in a crash, like the embedded one. -1: 30 with the embedded broker,
    #: 0 (off: every chunk exactly once in Kafka) with a configured Kafka.
    replay_window_s: Annotated[int, msgspec.Meta(ge=-1, le=3600)] = -1


class GatewaySettings(_Section):
    """The SSH gateway operators connect to (``sshtrail gateway``)."""

    #: Address operators connect to (``sshtrail up --demo`` uses 127.0.0.1).
    listen: str = "0.0.0.0"
    #: Port operators connect to.
    port: Port = 2222
    #: Private host key of the gateway; generated on first start when missing.
    #: Empty means ``<state_dir>/gateway/ssh_host_ed25519_key``.
    host_key: str = ""
    #: Ed25519 key that signs every recording's end; generated when missing.
    #: Empty means ``<state_dir>/gateway/recording_ed25519_key``.
    signing_key: str = ""
    #: A chunk is published at the latest this long after its first event ...
    chunk_max_delay_ms: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 100
    #: ... or as soon as it holds this many bytes.
    chunk_max_bytes: Annotated[int, msgspec.Meta(ge=1024, le=512 << 10)] = 64 << 10
    #: Typed bytes not echoed back within this window are recorded masked.
    echo_window_ms: Annotated[int, msgspec.Meta(ge=1, le=60_000)] = 500
    #: A session with no traffic either way for this long is closed; 0 disables.
    idle_timeout_s: Annotated[int, msgspec.Meta(ge=0)] = 3600
    #: An open session for which nothing was recorded for this long gets a
    #: keep-alive notice (a chunk of ~150 bytes), so the store group can tell an
    #: idle session from one whose gateway died (``consumer.interrupted_after_s``);
    #: 0 sends none.
    keepalive_s: Annotated[int, msgspec.Meta(ge=0, le=3600)] = 60
    #: Gateway processes accepting on the same port (``SO_REUSEPORT``), each with
    #: its own event loop, recorder, spool (``<spool>/worker-K``; worker 0 keeps
    #: ``<spool>`` itself) and Kafka producer, supervised: a worker that dies is
    #: replaced and its successor publishes what its spool held. 0 means one per
    #: core the gateway may use (``os.sched_getaffinity``); 1, the default, is a
    #: single process, as before workers existed. Every limit holds across
    #: workers; one stays the default because each spawned worker imports the
    #: gateway again: ``up --demo`` is ready 0.6-0.8 s later with two
    #: (docs/performance.md; docs/operations.md, "Workers").
    workers: Annotated[int, msgspec.Meta(ge=0, le=256)] = 1
    #: Where each gateway process encodes, chains, signs, spools and publishes what it
    #: records: ``"process"``, a recorder process of its own fed over a local socket,
    #: so that work never takes the interpreter lock from the relay; or ``"thread"``,
    #: writer and publisher threads in the relay's process (one process fewer per
    #: gateway process: 48 MiB of resident memory, much of it shared with the
    #: gateway process it is forked from). Both keep the same guarantees
    #: (docs/security.md); docs/performance.md, "The recorder process", weighs them.
    recorder: Literal["process", "thread"] = "process"
    #: Garbage-collection thresholds of each gateway process (Python's
    #: ``gc.set_threshold``), set once it listens, after what start-up allocated
    #: is frozen out of every collection (``gc.freeze``). The default collects
    #: young objects ten times more rarely than Python's 700 (docs/performance.md,
    #: "No stutter").
    gc_thresholds: Annotated[
        list[Annotated[int, msgspec.Meta(ge=1, le=10_000_000)]],
        msgspec.Meta(min_length=3, max_length=3),
    ] = msgspec.field(default_factory=lambda: [7000, 20, 20])
    #: Session channels at once; beyond it new ones are refused with a message.
    max_sessions: Positive = 1000
    #: The same, per operator.
    max_sessions_per_operator: Positive = 50
    #: Failed authentications per client address per minute before it is cut off.
    auth_attempts_per_minute: Positive = 30
    #: Failed authentication attempts allowed on one connection before it is
    #: closed (OpenSSH's MaxAuthTries); each one is in the audit record.
    max_auth_tries: Annotated[int, msgspec.Meta(ge=1, le=100)] = 6
    #: Failed authentications per operator name per minute, from all
    #: addresses, before further attempts for that name are refused unseen.
    auth_failures_per_operator: Positive = 10
    #: Connections not yet logged in, from all addresses; beyond it new ones are
    #: closed at once (OpenSSH's MaxStartups). A login must finish within 60 s.
    max_pending_logins: Positive = 512
    #: The same from one client address, so one address cannot take them all;
    #: room for a control node's parallel runs (Ansible forks) or a NAT.
    max_pending_logins_per_address: Positive = 64
    #: How long SIGTERM waits for running sessions to end before closing them.
    shutdown_timeout_s: Annotated[int, msgspec.Meta(ge=0)] = 30
    #: Address of the gateway's Prometheus ``/metrics`` endpoint.
    metrics_listen: str = "127.0.0.1"
    #: Its port; 0 turns it off.
    metrics_port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 0
    #: How long connecting to a target may take.
    connect_timeout_s: Annotated[int, msgspec.Meta(ge=1)] = 15
    #: Ciphers for the gateway's connections to targets, in order of preference;
    #: empty means asyncssh's defaults.
    target_ciphers: list[str] = msgspec.field(default_factory=list)
    #: Ciphers offered to operators' clients (the client's order picks among
    #: them); empty means asyncssh's defaults. The default leaves out
    #: ``chacha20-poly1305@openssh.com``, which costs asyncssh several times
    #: what AES-GCM does: keystroke echo under load is 3-4x faster without it
    #: (docs/performance.md). AES-CTR stays for clients without AES-GCM.
    ciphers: list[str] = msgspec.field(default_factory=lambda: list(OPERATOR_CIPHERS))
    #: Largest terminal an operator gets; a larger PTY request is cut to this
    #: size (recorded as requested and granted), so no recording can make a
    #: consumer's terminal emulator exhaust its memory.
    terminal_max_columns: Annotated[int, msgspec.Meta(ge=80, le=10_000)] = 1000
    #: ... and its largest height.
    terminal_max_rows: Annotated[int, msgspec.Meta(ge=24, le=10_000)] = 500
    #: Environment variables whose values are not recorded (shell-style
    #: patterns, case-insensitive); the name is, and whether it was passed on.
    secret_env: list[str] = msgspec.field(
        default_factory=lambda: ["*PASSWORD*", "*PASSWD*", "*SECRET*", "*TOKEN*", "*KEY*"]
    )
    #: The escrow public key (``x25519:...`` from ``sshtrail escrow-keygen``):
    #: input masked because it was not echoed is kept sealed to it, so the
    #: holder of its private key can reveal it (``sshtrail reveal``). Empty:
    #: masked input is only counted (a warning at start-up).
    escrow_public_key: str = ""
    #: Shown on the operator's terminal when a session with a terminal starts,
    #: and recorded with it; empty: none. Sessions without a terminal (exec,
    #: scp, sftp) get none: it would mix into their data.
    banner: Annotated[str, msgspec.Meta(max_length=2000)] = (
        "This session is recorded and may be watched."
    )
    #: Benchmarks only: false relays without recording anything (logged loudly).
    record: bool = True
    spool: SpoolSettings = msgspec.field(default_factory=SpoolSettings)


class ConsumerSettings(_Section):
    """The consumer groups (``sshtrail store``, ``sshtrail index``, ``sshtrail alert``)."""

    #: Group id of the members that persist sessions (``sshtrail store``).
    store_group: Name = "sshtrail-store"
    #: Group id of the members that index sessions (``sshtrail index``).
    index_group: Name = "sshtrail-index"
    #: Group id of the members that raise Sigma alerts (``sshtrail alert``).
    alert_group: Name = "sshtrail-alert"
    #: ``auto`` is cooperative-sticky, except on the embedded development broker,
    #: which cannot always finish a cooperative rebalance (docs/decisions.md).
    assignment_strategy: Literal["auto", "cooperative-sticky", "range", "roundrobin"] = "auto"
    #: The group protocol. ``classic``: members assign partitions among themselves
    #: with ``assignment_strategy`` and ``session_timeout_ms``. ``consumer``
    #: (KIP-848, Apache Kafka 4+): the broker assigns, incrementally, and its
    #: ``group.consumer.session.timeout.ms`` replaces ``session_timeout_ms``.
    #: The embedded broker speaks only ``classic``.
    group_protocol: Literal["classic", "consumer"] = "classic"
    #: Caught up, a member pauses its partitions and asks the broker for their
    #: log ends this often (milliseconds), fetching again when one moved: the
    #: embedded broker answers fetches at once instead of holding them, so an
    #: idle librdkafka consumer would spin (docs/decisions.md). -1: 100 with the
    #: embedded broker, 0 (off: librdkafka's held fetches) with a real Kafka.
    idle_check_ms: Annotated[int, msgspec.Meta(ge=-1, le=10_000)] = -1
    #: Messages written per database transaction at most.
    batch_size: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 2000
    #: How long a batch waits to fill before it is written anyway.
    batch_wait_ms: Annotated[int, msgspec.Meta(ge=1, le=60_000)] = 200
    #: librdkafka's ``max.poll.interval.ms``; writes are bounded well below it.
    #: It is also how long a rebalance may wait for members to rejoin.
    max_poll_interval_ms: Annotated[int, msgspec.Meta(ge=10_000)] = 300_000
    #: librdkafka's ``session.timeout.ms``: a member silent this long (killed)
    #: is dropped and its partitions reassigned.
    session_timeout_ms: Annotated[int, msgspec.Meta(ge=6_000, le=300_000)] = 45_000
    #: Back-off before the first retry of a failed database write; it doubles ...
    retry_initial_ms: Annotated[int, msgspec.Meta(ge=1)] = 200
    #: ... up to this.
    retry_max_ms: Annotated[int, msgspec.Meta(ge=1)] = 10_000
    #: An open session with no chunk for this long (not even the gateway's
    #: keep-alive) is marked ``interrupted`` by the store: its gateway stopped and
    #: did not come back to end it. 0 means five times ``gateway.keepalive_s``
    #: (with keep-alives off: the gateway's idle timeout plus five minutes, an hour
    #: if that is 0).
    interrupted_after_s: Annotated[int, msgspec.Meta(ge=0)] = 0
    #: The former name of ``interrupted_after_s``, read when that is 0.
    incomplete_after_s: Annotated[int, msgspec.Meta(ge=0)] = 0
    #: Static group membership (``group.instance.id``): a member restarted with
    #: the same id gets its partitions back at once, without a rebalance.
    #: Unique per member; empty means dynamic membership. ``--instance-id`` sets it.
    instance_id: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9._-]{0,249}$")] = ""
    #: A member stops taking messages (stalls, loudly, committing nothing) when
    #: more than this many messages in a row of one partition had to go to the
    #: dead-letter topic -- say, chunks of a newer wire format; 0: no limit.
    dead_letter_max_consecutive: Annotated[int, msgspec.Meta(ge=0)] = 100
    #: ... or when more than this share of a partition's last 1,000 messages
    #: did; 0: no limit.
    dead_letter_max_ratio: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.5
    #: Take chunks without a signature (wire format 1 to 3: gateways older
    #: than the consumers) -- only while gateways are being upgraded. Off, they
    #: are refused as forgeries would be: kept as evidence, not stored as the
    #: session's (docs/operations.md, *Upgrading*).
    accept_unsigned_chunks: bool = False
    #: At most this many MiB of refused chunks are kept as evidence (``refused_chunks``,
    #: their bytes and about 128 bytes a row); beyond it a refused chunk is only
    #: counted and logged, so a forger cannot fill the store's disk. 0: keep none.
    refused_chunks_max_mib: Annotated[int, msgspec.Meta(ge=0, le=1 << 20)] = 256
    #: Address of each consumer instance's Prometheus ``/metrics`` endpoint.
    metrics_listen: str = "127.0.0.1"
    #: Its port; 0 turns it off. ``--metrics-port`` sets it.
    metrics_port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 0


class ControlSettings(_Section):
    """Requests to the gateways: terminate a session, lock an operator (docs/security.md)."""

    #: The topic requests and the gateways' answers travel on, keyed by session id
    #: (or ``operator:NAME``); created compacted by ``sshtrail topics`` and ``up``.
    topic: Name = "sshtrail.control"
    #: Ed25519 key that signs requests (the web console's and ``sshtrail
    #: terminate``'s); created when missing. Empty means
    #: ``<state_dir>/control/control_ed25519_key``.
    signing_key: str = ""
    #: Public keys (``ssh-ed25519 AAAA...``) whose signed requests the gateways
    #: obey. Empty: the public half of ``signing_key`` (one machine, as ``up``).
    trusted_keys: list[str] = msgspec.field(default_factory=list)
    #: Recording public keys of the gateways (``ssh-ed25519 AAAA...``) whose
    #: answers requesters believe, beside ``gateway.signing_key``'s public half;
    #: also the only keys whose chunks the store, the index and the live view take.
    gateway_keys: list[str] = msgspec.field(default_factory=list)


class PolicySettings(_Section):
    """Command policy at the gateway: rules that reject or warn about commands before they
    run (docs/policy.md)."""

    #: The TOML file of rules (``[[rule]]``); empty: no command policy. Read when the
    #: gateway starts and again when it changes; a file that cannot be read keeps the
    #: rules before it (at start: every session is refused until it is mended).
    file: str = ""
    #: How long a command held for review (``action = "review"``) waits for an
    #: auditor's answer, in seconds; no answer by then rejects it.
    review_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=86400)] = 300.0


class AlertSettings(_Section):
    """The alert group (``sshtrail alert``): Sigma rules on every command (docs/alerts.md)."""

    #: The folder of Sigma rules (``*.yml``, ``*.yaml``); empty: no rules, no alerts.
    #: Read at start and again when a file in it changes; a rule that cannot be used
    #: is reported (``sshtrail alerts rules``) and the others stay in force.
    rules: str = ""
    #: The topic alerts are published on, keyed by session id (JSON).
    topic: Name = "sshtrail.alerts"
    #: One URL every alert is POSTed to (JSON), retried with back-off.
    webhook: str = ""
    #: More URLs, each sent every alert.
    webhooks: list[str] = msgspec.field(default_factory=list)
    #: ``json`` (the alert as ``sshtrail alerts --json`` has it), or ``slack`` (a
    #: Slack-compatible ``{"text": ...}``).
    webhook_format: Literal["json", "slack"] = "json"
    #: The console's address, for the link to the moment of an alert.
    console_url: str = "http://127.0.0.1:8022"

    def __post_init__(self) -> None:
        for url in [self.webhook, *self.webhooks]:
            if url and not re.match(r"^https?://[^/\s]+", url):
                raise ValueError(
                    f"a webhook URL must start with http:// or https://: {url[:8]!r}..."
                )


class RetentionRuleSettings(_Section, kw_only=True):
    """One ``[[retention.rule]]``: how long sessions of some operators on some targets
    are kept (docs/operations.md, "Retention and legal hold")."""

    #: A name for the rule, said in every deletion it makes (``deletions``, ``verify``).
    name: Name
    #: Operators the rule covers: names with ``*`` and ``?``.
    operators: list[Annotated[str, msgspec.Meta(pattern=SCOPE_PATTERN)]] = msgspec.field(
        default_factory=lambda: ["*"]
    )
    #: Targets the rule covers: names with ``*`` and ``?``.
    targets: list[Annotated[str, msgspec.Meta(pattern=SCOPE_PATTERN)]] = msgspec.field(
        default_factory=lambda: ["*"]
    )
    #: How long a session is kept after it ended: ``30s``, ``12h``, ``90d``, ``7y``.
    #: The longest ``keep`` of the rules covering a session wins.
    keep: str
    #: When deletion becomes required, not just allowed (a duration as ``keep``, at
    #: least ``keep``); empty: as soon as ``keep`` has passed.
    delete_after: str = ""

    def __post_init__(self) -> None:
        keep = parse_duration(self.keep)
        if self.delete_after and parse_duration(self.delete_after) < keep:
            raise ValueError(f"rule {self.name!r}: delete_after must be at least keep")


class RetentionSettings(_Section):
    """How long sessions are kept, and the deletions that prove what was deleted."""

    #: The rules; a session no rule covers is kept forever.
    rule: list[RetentionRuleSettings] = msgspec.field(default_factory=list)
    #: How often the store and index groups look for sessions due for deletion, in seconds.
    check_s: Annotated[float, msgspec.Meta(gt=0, le=86400)] = 60.0
    #: Ed25519 key that signs the deletions' tombstones; created when missing. Empty
    #: means ``<state_dir>/retention/deletion_ed25519_key``.
    deletion_key: str = ""
    #: How long the web console's access log keeps a row (a duration as a rule's
    #: ``keep``); empty: for ever. Session rules never delete it. Dropped rows leave a
    #: checkpoint signed by the deletion key, from which ``access-log --verify`` checks.
    access_log_keep: str = ""

    def __post_init__(self) -> None:
        _unique("retention.rule", [rule.name for rule in self.rule])
        if self.access_log_keep:
            parse_duration(self.access_log_keep)


class ConsoleRights(_Section):
    """What a console auditor may see and do: a local account's, or an identity
    provider group's (``[[web.oidc.groups]]``)."""

    #: ``auditor`` reads sessions in scope; ``admin`` also sees the consumer
    #: lag and the access log.
    role: Literal["auditor", "admin"] = "auditor"
    #: Operators whose sessions they may see (``*`` and ``?`` patterns).
    operators: list[Annotated[str, msgspec.Meta(pattern=SCOPE_PATTERN)]] = msgspec.field(
        default_factory=lambda: ["*"]
    )
    #: Targets whose sessions they may see (``*`` and ``?`` patterns).
    targets: list[Annotated[str, msgspec.Meta(pattern=SCOPE_PATTERN)]] = msgspec.field(
        default_factory=lambda: ["*"]
    )
    #: May end active sessions of their scope (and admins lock operators).
    terminate: bool = False
    #: May approve or deny commands held for review (four eyes) in sessions of their
    #: scope; never their own.
    approve: bool = False
    #: May download the files an SFTP or SCP session moved, from its session page,
    #: when ``transfers.content_export`` is on: a file copied off a server (a dump,
    #: a key) is more than most auditors need to see.
    export_files: bool = False


#: A group name as identity providers send them (``auditors``, ``/org/sre``, ``CN=...``).
GroupName = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]


class OidcGroupSettings(ConsoleRights, kw_only=True):
    """What the members of one identity-provider group may do in the console."""

    #: The group, as the provider sends it in ``groups_claim``.
    group: GroupName


class OidcSettings(_Section):
    """Sign-in with the organisation's OpenID Connect provider (docs/operations.md,
    "Sign in with your identity provider"). Local ``auditors`` keep signing in with
    their passwords beside it (small sites, break-glass)."""

    #: The provider's discovery document
    #: (``https://idp.example/.well-known/openid-configuration``); empty: no OIDC
    #: sign-in. HTTPS (plain HTTP only to a loopback address).
    discovery_url: str = ""
    #: The console's client id, registered at the provider.
    client_id: str = ""
    #: Its client secret (sent with HTTP Basic to the token endpoint); ``sshtrail
    #: config`` shows ``(set)``. Better given in the environment than in the file.
    client_secret: str = ""
    #: The callback URL registered at the provider
    #: (``https://console.example/login/oidc/callback``); empty: this console's
    #: address as the browser reached it, which behind a proxy may not be the one
    #: registered.
    redirect_url: str = ""
    #: Scopes asked for; ``openid`` is required, and some providers send groups only
    #: for a ``groups`` scope.
    scopes: list[Annotated[str, msgspec.Meta(pattern=r"^[!#-\[\]-~]{1,128}$")]] = msgspec.field(
        default_factory=lambda: ["openid", "profile"]
    )
    #: The ID token claim holding the user's groups (a list of names, or one name).
    groups_claim: Annotated[str, msgspec.Meta(min_length=1, max_length=128)] = "groups"
    #: The ID token claim that names the auditor (in the access log, for moderation).
    #: It must be a name as ``auditors.name`` allows.
    name_claim: Annotated[str, msgspec.Meta(min_length=1, max_length=128)] = "preferred_username"
    #: What the sign-in button calls the provider ("Sign in with ...").
    label: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] = "your identity provider"
    #: Clock skew allowed on the ID token's ``exp`` and ``iat``, in seconds.
    leeway_s: Annotated[int, msgspec.Meta(ge=0, le=300)] = 60
    #: Who may sign in, and with what rights: the first table, in the file's order,
    #: naming one of the user's groups decides; a user none names is refused.
    groups: list[OidcGroupSettings] = msgspec.field(default_factory=list)

    @property
    def enabled(self) -> bool:
        return bool(self.discovery_url)

    def __post_init__(self) -> None:
        if not self.discovery_url:
            return
        urls = {"discovery_url": self.discovery_url, "redirect_url": self.redirect_url}
        for key, url in urls.items():
            if url and not _safe_url(url):
                raise ValueError(f"{key}: {url!r} must be https:// (http:// only on loopback)")
        if not self.client_id:
            raise ValueError("client_id: required with discovery_url")
        if "openid" not in self.scopes:
            raise ValueError("scopes: must include openid")
        _unique("groups", [mapping.group for mapping in self.groups])


def _safe_url(url: str) -> bool:
    """HTTPS, or plain HTTP to this host (a provider or console on loopback)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return True
    if parts.scheme != "http" or not parts.hostname:
        return False
    if parts.hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return False


class WebSettings(_Section):
    """The auditors' web console (``sshtrail web``; docs/operations.md, "Web console")."""

    #: Address the console listens on. Keep it on loopback behind a TLS proxy,
    #: or set ``tls_cert`` and ``tls_key``.
    listen: str = "127.0.0.1"
    #: Its port.
    port: Port = 8022
    #: PEM certificate chain for HTTPS; with ``tls_key``, the console serves TLS only.
    tls_cert: str = ""
    #: PEM private key of ``tls_cert``.
    tls_key: str = ""
    #: Addresses of reverse proxies whose identity header is believed (SSO in
    #: front, e.g. oauth2-proxy). Empty: the header is ignored, and auditors
    #: log in with their passwords.
    trusted_proxies: list[str] = msgspec.field(default_factory=list)
    #: The header a trusted proxy names the signed-in auditor with; the name
    #: must be one of ``auditors`` (which gives the role and scopes).
    proxy_user_header: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9-]{1,64}$")] = (
        "X-Forwarded-User"
    )
    #: A signed-in auditor's session lasts this long without use ... (sign-ins
    #: are kept in the store: a restart signs nobody out; ``web revoke`` ends one)
    idle_timeout_min: Annotated[int, msgspec.Meta(ge=1, le=24 * 60)] = 30
    #: ... and at most this long in all, however busy.
    session_hours: Annotated[int, msgspec.Meta(ge=1, le=24 * 7)] = 8
    #: Failed logins per client address, and per account name, per 15 minutes
    #: before further attempts are refused unchecked until the window passes.
    login_failures: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 10
    #: Sessions per page of the sessions list.
    page_size: Annotated[int, msgspec.Meta(ge=10, le=1000)] = 50
    #: The topic the heads of the access log's hash chains are published on,
    #: signed with the control key (``access-log --verify`` holds the rows to
    #: them); created compacted by ``sshtrail topics`` and ``up``.
    access_log_topic: Name = "sshtrail.access-log"
    #: Sign-in with the organisation's OpenID Connect provider (``[web.oidc]``).
    oidc: OidcSettings = msgspec.field(default_factory=OidcSettings)

    def __post_init__(self) -> None:
        for proxy in self.trusted_proxies:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise ValueError(
                    f"trusted_proxies: {proxy!r} is not an address or network"
                ) from None


class AuditorSettings(ConsoleRights, kw_only=True):
    """A person who reads sessions in the web console."""

    #: The name they sign in with (or the trusted proxy names them by).
    name: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9._@+-]{1,128}$")]
    #: ``scrypt$...`` hash from ``sshtrail password-hash``; empty: no password
    #: login (a trusted proxy may still name them).
    password_hash: str = ""
    #: Groups they belong to, which a ``[[moderation]]`` table of the policy file may
    #: name as ``group:NAME`` among its moderators (docs/moderation.md).
    groups: list[Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9._@+-]{1,128}$")]] = (
        msgspec.field(default_factory=list)
    )

    def __post_init__(self) -> None:
        if self.password_hash and not well_formed(self.password_hash):
            raise ValueError(
                f"auditor {self.name!r}: password_hash is not a hash from sshtrail password-hash"
            )


class OperatorSettings(_Section):
    """A person allowed through the gateway, and where to."""

    #: The name operators log in with (``ssh NAME@TARGET@gateway``).
    name: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9._-]{1,64}$")]
    #: OpenSSH ``authorized_keys`` lines (options such as ``from=`` are honoured).
    keys: list[str] = msgspec.field(default_factory=list)
    #: Public keys of OpenSSH user CAs whose certificates name this operator as principal.
    cert_authorities: list[str] = msgspec.field(default_factory=list)
    #: ``scrypt$...`` hash from ``sshtrail password-hash``; empty disables passwords.
    password_hash: str = ""
    #: Target names this operator may reach; ``["*"]`` means all.
    targets: list[str] = msgspec.field(default_factory=list)


class TargetSettings(_Section):
    """A server behind the gateway. The operator never sees its credentials."""

    #: The name operators choose it by (``ssh OPERATOR@NAME@gateway``).
    name: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9._-]{1,64}$")]
    #: Address the gateway connects to.
    host: Annotated[str, msgspec.Meta(min_length=1)]
    #: Its SSH port.
    port: Port = 22
    #: The remote account sessions run as.
    user: Annotated[str, msgspec.Meta(min_length=1)] = "root"
    #: Private key file the gateway authenticates to the target with.
    key: Annotated[str, msgspec.Meta(min_length=1)] = ""
    #: The target's host public keys (``ssh-ed25519 AAAA...``); a mismatch is refused.
    host_keys: list[str] = msgspec.field(default_factory=list)
    #: Accept and pin the first host key seen when ``host_keys`` is empty.
    trust_on_first_use: bool = False
    #: Environment variables an operator's client may pass on to this target
    #: (shell-style patterns, e.g. ``LANG``, ``LC_*``); every one sent is
    #: recorded, the others are not passed on.
    accept_env: list[str] = msgspec.field(default_factory=list)
    #: Let operators forward TCP connections to what the target reaches
    #: (``ssh -L``), each recorded as a session of its own (mode
    #: ``direct-tcpip``). Remote forwarding (``ssh -R``) is always refused.
    allow_forwarding: bool = False


class Settings(_Section):
    """Everything a sshtrail process can be told. See docs/operations.md."""

    #: Where keys, the spool, the embedded broker and the SQLite files live by default.
    state_dir: str = DEFAULT_STATE_DIR
    #: Least severe log lines written (to stderr); ``--log-level`` overrides it.
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    #: Identifies this host in recordings and consumer ids.
    instance: str = msgspec.field(default_factory=socket.gethostname)
    kafka: KafkaSettings = msgspec.field(default_factory=KafkaSettings)
    broker: BrokerSettings = msgspec.field(default_factory=BrokerSettings)
    database: DatabaseSettings = msgspec.field(default_factory=DatabaseSettings)
    search: SearchSettings = msgspec.field(default_factory=SearchSettings)
    transfers: TransfersSettings = msgspec.field(default_factory=TransfersSettings)
    gateway: GatewaySettings = msgspec.field(default_factory=GatewaySettings)
    consumer: ConsumerSettings = msgspec.field(default_factory=ConsumerSettings)
    web: WebSettings = msgspec.field(default_factory=WebSettings)
    control: ControlSettings = msgspec.field(default_factory=ControlSettings)
    policy: PolicySettings = msgspec.field(default_factory=PolicySettings)
    alerts: AlertSettings = msgspec.field(default_factory=AlertSettings)
    retention: RetentionSettings = msgspec.field(default_factory=RetentionSettings)
    operators: list[OperatorSettings] = msgspec.field(default_factory=list)
    targets: list[TargetSettings] = msgspec.field(default_factory=list)
    auditors: list[AuditorSettings] = msgspec.field(default_factory=list)

    def __post_init__(self) -> None:
        _unique("operators", [operator.name for operator in self.operators])
        _unique("auditors", [auditor.name for auditor in self.auditors])
        _unique("targets", [target.name for target in self.targets])
        known = {target.name for target in self.targets}
        for operator in self.operators:
            unknown = sorted(set(operator.targets) - known - {"*"})
            if unknown:
                raise ValueError(f"operator {operator.name!r} names unknown targets {unknown}")

    @property
    def consumer_groups(self) -> list[str]:
        """The groups these settings run: store and index, and alert when it has rules."""
        groups = [self.consumer.store_group, self.consumer.index_group]
        return [*groups, self.consumer.alert_group] if self.alerts.rules else groups

    @property
    def state_path(self) -> Path:
        return Path(self.state_dir).expanduser()

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{self.state_path / 'sshtrail.db'}"

    @property
    def search_url(self) -> str:
        return self.search.url or f"sqlite:///{self.state_path / 'search.db'}"

    @property
    def broker_data_dir(self) -> Path:
        return (
            Path(self.broker.data_dir).expanduser()
            if self.broker.data_dir
            else (self.state_path / "broker")
        )

    def state_file(self, configured: str, default: str) -> Path:
        """A configured path, or ``default`` inside the state directory."""
        return Path(configured).expanduser() if configured else self.state_path / default

    @property
    def embedded_broker(self) -> bool:
        return not self.kafka.bootstrap_servers

    @property
    def bootstrap_servers(self) -> str:
        """The servers to connect to: the configured ones, or the embedded broker."""
        return self.kafka.bootstrap_servers or f"{self.broker.host}:{self.broker.port}"

    def using_broker(self, host: str, port: int) -> Settings:
        """A copy that talks to the embedded broker at ``host:port``."""
        return msgspec.structs.replace(
            self,
            kafka=msgspec.structs.replace(self.kafka, bootstrap_servers=""),
            broker=msgspec.structs.replace(self.broker, host=host, port=port),
        )


def _unique(what: str, names: list[str]) -> None:
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"{what}: names must be unique, repeated: {duplicates}")


def load_settings(
    path: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    recorded: bool | None = None,
) -> Settings:
    """Read settings: ``path``, else ``$SSHTRAIL_CONFIG``, else ``./sshtrail.toml`` if present.

    Environment variables ``SSHTRAIL_<KEY>`` override file values; nested keys
    are joined with a double underscore (``SSHTRAIL_KAFKA__PARTITIONS=12``).
    Between the two come the variables ``sshtrail up`` recorded in the state dir
    (sshtrail/stackenv.py) when ``recorded`` is true; by default, when the
    environment read is this process's own (a given ``environ`` is a question
    about that environment alone, as a test asks it).
    Raises :class:`ConfigError` naming the key and its source.
    """
    return read_settings(path, environ, recorded=recorded)[0]


def read_settings(
    path: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    recorded: bool | None = None,
) -> tuple[Settings, Sources]:
    """:func:`load_settings`, and where the settings came from."""
    env = os.environ if environ is None else environ
    recorded = environ is None if recorded is None else recorded
    source = settings_file(path, env)
    base: dict[str, Any] = _read_toml(source) if source is not None else {}
    own = {var: value for var, value in env.items() if var.startswith(ENV_PREFIX)}
    own.pop(CONFIG_ENV, None)
    sources = Sources(source, tuple(sorted(own)))
    if recorded:
        sources = _recorded(base, own, sources)
    raw = base
    for var, value in {**sources.recorded_values, **own}.items():
        _apply_env(raw, var, value)
    try:
        return msgspec.convert(raw, Settings, strict=False), sources
    except msgspec.ValidationError as exc:
        key, message = _split_validation_error(str(exc))
        choices = _choices(key)
        if choices and message.startswith("invalid enum value"):
            message += f" (expected one of: {', '.join(choices)})"
        raise ConfigError(message, key=key, source=_blame(key, sources, env)) from None


def _recorded(base: dict[str, Any], own: dict[str, str], sources: Sources) -> Sources:
    """``sources`` with the record of ``sshtrail up`` in the state dir these settings
    name, when there is one and ``up`` read the same settings file: the stack it
    started is the one this command is about. Another file, and it is skipped (the
    command was pointed elsewhere on purpose)."""
    state_dir = own.get(f"{ENV_PREFIX}STATE_DIR", base.get("state_dir", DEFAULT_STATE_DIR))
    if not isinstance(state_dir, str):
        return sources  # the validation names the bad value
    record = stackenv.read(Path(state_dir).expanduser())
    if record is None:
        return sources
    mine = sources.file.resolve() if sources.file is not None else None
    if record.config != mine:
        read = record.config or "no settings file"
        return replace(
            sources,
            skipped=f"{record.path} was not used: sshtrail up read {read}, "
            f"this command reads {mine or 'no settings file'}",
        )
    taken = {var: value for var, value in record.environment.items() if var not in own}
    return replace(
        sources,
        recorded=record.path,
        recorded_variables=tuple(sorted(taken)),
        recorded_values=taken,
    )


def settings_file(path: str | Path | None, env: Mapping[str, str]) -> Path | None:
    """The settings file a process reads: ``path`` (``--config``), else
    ``$SSHTRAIL_CONFIG``, else ``./sshtrail.toml`` if present, else None."""
    if path is not None:
        chosen, origin = Path(path), "--config"
    elif env.get(CONFIG_ENV):
        chosen, origin = Path(env[CONFIG_ENV]), CONFIG_ENV
    elif Path(DEFAULT_FILE).is_file():
        return Path(DEFAULT_FILE)
    else:
        return None
    if not chosen.is_file():
        raise ConfigError(f"config file {chosen} (from {origin}) does not exist")
    return chosen


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        data = msgspec.toml.decode(path.read_bytes())
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", source=path) from None
    except msgspec.DecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", source=path) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not valid TOML: not UTF-8 text ({exc.reason})", source=path) from None
    if not isinstance(data, dict):
        raise ConfigError("the top level must be a table", source=path)
    return data


def _apply_env(raw: dict[str, Any], var: str, value: str) -> None:
    path = var[len(ENV_PREFIX) :].lower().split("__")
    if not all(path):
        raise ConfigError(f"malformed variable name {var}", source="environment")
    table = raw
    for part in path[:-1]:
        table = table.setdefault(part, {})
        if not isinstance(table, dict):
            raise ConfigError(f"{var} names a key inside a value", source="environment")
    table[path[-1]] = value


_PATH_RE: Final = re.compile(r"^(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_UNKNOWN_RE: Final = re.compile(r"^Object contains unknown field `(?P<field>[^`]+)`$")


def _split_validation_error(text: str) -> tuple[str | None, str]:
    """Turn msgspec's ``"Expected int - at `$.a.b`"`` into ``("a.b", "expected int")``."""
    match = _PATH_RE.match(text)
    assert match is not None  # the pattern matches any string
    message, path = match["message"], (match["path"] or "").lstrip(".")
    path = re.sub(r"\[(\d+)\]", r".\1", path)
    unknown = _UNKNOWN_RE.match(message)
    if unknown:
        path = f"{path}.{unknown['field']}" if path else unknown["field"]
        message = "unknown key (check its spelling and table)"
    return path or None, message[:1].lower() + message[1:]


def _choices(key: str | None) -> tuple[str, ...]:
    """The allowed values of a ``Literal``-typed key, for a friendlier message."""
    node: Any = Settings
    for part in (key or "").split("."):
        hints = typing.get_type_hints(node) if isinstance(node, type) else {}
        if part not in hints:
            return ()
        node = hints[part]
    if typing.get_origin(node) is Literal:
        return tuple(str(arg) for arg in typing.get_args(node))
    return ()


def _blame(key: str | None, sources: Sources, env: Mapping[str, str]) -> str | Path:
    """Where the offending value came from: its environment variable, else the one
    ``sshtrail up`` recorded, else the file."""
    parts = key.split(".") if key else []
    for depth in range(len(parts), 0, -1):
        candidate = ENV_PREFIX + "__".join(parts[:depth]).upper()
        if candidate in env:
            return f"environment variable {candidate}"
        if candidate in sources.recorded_values:
            return f"variable {candidate} recorded by sshtrail up in {sources.recorded}"
    return sources.file if sources.file is not None else "defaults"
