"""compose/: the files validate with Debian's docker-compose, and what they run exists.

Docker cannot run on the development and CI machines, so the stack itself is
not started here (README.md says which parts have been run). What can be
checked without it is checked for real: ``docker-compose config`` resolves each
file; every sshtrail service's command parses with the CLI's own parser; its
environment, together with the image's ``ENV`` and the settings file the
``keys`` service writes, loads with the settings loader; health checks probe
the ports the settings open; the demo target's sshd_config passes ``sshd -t``;
and the two files differ only in Kafka.
"""

from __future__ import annotations

import base64
import functools
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import make_url

from sshtrail.cli.main import build_parser
from sshtrail.keyfiles import public_line
from sshtrail.settings import Settings, load_settings
from tests.support.kafka import version as kafka_version
from tests.support.services import unavailable
from tests.support.sshd import ensure_privsep_dir, find_sshd

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose"
FILES = ["compose.yaml", "compose.small.yaml"]


def _docker_compose() -> str:
    found = shutil.which("docker-compose")
    if found is None:
        unavailable("docker-compose is not installed (Debian: apt-get install docker-compose)")
    return found


@functools.cache
def resolved(name: str) -> dict[str, Any]:
    """The file as ``docker-compose config`` resolves it (anchors, defaults, paths);
    read once per file and run (callers only read it)."""
    result = subprocess.run(
        [_docker_compose(), "-f", str(COMPOSE / name), "config"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = yaml.safe_load(result.stdout)
    return data


def image_env() -> dict[str, str]:
    """The ``ENV`` of compose/Dockerfile's final stage."""
    text = (COMPOSE / "Dockerfile").read_text().replace("\\\n", " ")
    env: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            for pair in line[4:].split():
                name, _, value = pair.partition("=")
                env[name] = value
    return env


@pytest.fixture(scope="module")
def demo_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run compose/demo-keys.sh as the ``keys`` service would, into a temp folder."""
    if shutil.which("ssh-keygen") is None:
        unavailable("ssh-keygen is not installed (openssh-client)")
    folder = tmp_path_factory.mktemp("keys")
    (folder / "keys").mkdir()
    return _run_demo_keys(folder)


def _run_demo_keys(folder: Path) -> Path:
    config = folder / "sshtrail.toml"
    env = {
        **os.environ,
        "KEYS_DIR": str(folder / "keys"),
        "CONFIG_FILE": str(config),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    result = subprocess.run(
        ["sh", str(COMPOSE / "demo-keys.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return config


def sshtrail_services(data: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, service in data["services"].items():
        if str(service.get("image", "")).startswith("sshtrail:"):
            yield name, service


@pytest.mark.parametrize("name", FILES)
def test_docker_compose_config_accepts_the_file(name: str) -> None:
    result = subprocess.run(
        [_docker_compose(), "-f", str(COMPOSE / name), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


@pytest.mark.parametrize("name", FILES)
def test_every_command_parses_with_the_cli(name: str) -> None:
    checked = set()
    for service_name, service in sshtrail_services(resolved(name)):
        if "entrypoint" in service:  # the keys service runs its script, tested below
            assert service["entrypoint"] == ["sshtrail-demo-keys"]
            continue
        argv = service["command"]
        if argv == ["--help"]:
            with pytest.raises(SystemExit) as shown:
                build_parser().parse_args(argv)
            assert shown.value.code == 0
            continue
        try:
            args = build_parser().parse_args(argv)
        except SystemExit:  # argparse printed why on stderr, pytest shows it
            pytest.fail(f"{name}: service {service_name}: {argv} is not a valid command")
        assert args.command == argv[0]
        checked.add(argv[0])
    assert checked == {"topics", "db", "gateway", "store", "index", "lag-exporter"}


@pytest.mark.parametrize("name", FILES)
def test_every_environment_loads_with_the_settings(name: str, demo_config: Path) -> None:
    data = resolved(name)
    for service_name, service in sshtrail_services(data):
        settings = _settings(service, demo_config)
        assert settings.kafka.bootstrap_servers, service_name  # never the embedded broker
        brokers = {server.split(":")[0] for server in settings.kafka.bootstrap_servers.split(",")}
        assert brokers <= set(data["services"]), f"{service_name}: unknown broker"
        assert settings.database_url.startswith("postgresql+psycopg://sshtrail:")
        assert "@postgres:5432/" in settings.database_url
        # The index is a second witness only in a database and role of its own.
        store, index = make_url(settings.database_url), make_url(settings.search_url)
        assert index.username != store.username, service_name
        assert (index.host, index.database) != (store.host, store.database), service_name
        _assert_files_are_mounted(service_name, service, settings)
    # Every consumer trusts the gateway's recording key (chunks signed by others are
    # refused), and the gateway signs with it.
    gateway = _settings(data["services"]["gateway"], demo_config)
    signing = public_line(Path(gateway.gateway.signing_key))
    for member in ("store", "index"):
        trusted = _settings(data["services"][member], demo_config).control.gateway_keys
        assert [" ".join(k.split()[:2]) for k in trusted] == [" ".join(signing.split()[:2])]
    topics = _settings(data["services"]["topics"], demo_config)
    kafka_services = [s for s in data["services"] if s.startswith("kafka")]
    assert topics.kafka.replication_factor == len(kafka_services)
    assert int(topics.kafka.topic_config["min.insync.replicas"]) == max(
        1, topics.kafka.replication_factor - 1
    )


def _settings(service: dict[str, Any], demo_config: Path) -> Settings:
    env = {**image_env(), **{k: str(v) for k, v in service.get("environment", {}).items()}}
    assert env["SSHTRAIL_CONFIG"] == "/etc/sshtrail/sshtrail.toml"
    env["SSHTRAIL_CONFIG"] = str(demo_config)  # where the test ran demo-keys.sh
    return load_settings(environ=env)


def _assert_files_are_mounted(name: str, service: dict[str, Any], settings: Settings) -> None:
    """The settings file and the keys (/etc/sshtrail) are mounted; the gateway's state too."""
    targets = {volume.split(":")[1] for volume in service.get("volumes", [])}
    assert "/etc/sshtrail" in targets, f"{name}: the config volume is not mounted"
    if service["command"] == ["gateway"]:
        assert settings.state_dir in targets, f"{name}: the gateway's state is not a volume"


@pytest.mark.parametrize("name", FILES)
def test_health_checks_probe_the_ports_the_settings_open(name: str, demo_config: Path) -> None:
    data = resolved(name)
    gateway = data["services"]["gateway"]
    settings = _settings(gateway, demo_config)
    assert f"'127.0.0.1', {settings.gateway.port})" in gateway["healthcheck"]["test"][-1]
    assert [p["target"] for p in gateway["ports"]] == [settings.gateway.port]
    for member in ("store", "index"):
        service = data["services"][member]
        settings = _settings(service, demo_config)
        assert settings.consumer.metrics_listen == "0.0.0.0"  # scraped by Prometheus
        probe = service["healthcheck"]["test"][-1]
        assert f"127.0.0.1:{settings.consumer.metrics_port}/metrics" in probe


def test_the_two_files_differ_only_in_kafka() -> None:
    full, small = resolved("compose.yaml"), resolved("compose.small.yaml")
    assert {s for s in full["services"] if not s.startswith("kafka")} == {
        s for s in small["services"] if not s.startswith("kafka")
    }
    for name, service in full["services"].items():
        if name.startswith("kafka"):
            continue
        assert _without_kafka(service) == _without_kafka(small["services"][name]), name
    assert full["services"]["store"]["deploy"]["replicas"] == 2
    assert full["services"]["index"]["deploy"]["replicas"] == 2


def _without_kafka(service: dict[str, Any]) -> dict[str, Any]:
    """A service minus what depends on the number of brokers."""
    kept = {k: v for k, v in service.items() if k not in ("deploy", "depends_on")}
    env = {
        k: v
        for k, v in service.get("environment", {}).items()
        if k != "SSHTRAIL_KAFKA__BOOTSTRAP_SERVERS"
        and not k.startswith(
            (
                "SSHTRAIL_KAFKA__PARTITIONS",
                "SSHTRAIL_KAFKA__REPLICATION",
                "SSHTRAIL_KAFKA__TOPIC_CONFIG__MIN",
            )
        )
    }
    kept["environment"] = env
    depends = {k: v for k, v in service.get("depends_on", {}).items() if not k.startswith("kafka")}
    kept["depends_on"] = depends
    return kept


def test_kraft_brokers_share_a_valid_cluster_id_and_unique_node_ids() -> None:
    brokers = [s for n, s in resolved("compose.yaml")["services"].items() if n.startswith("kafka")]
    assert len(brokers) == 3
    [cluster_id] = {b["environment"]["CLUSTER_ID"] for b in brokers}
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16  # what kafka-storage wants
    assert sorted(b["environment"]["KAFKA_NODE_ID"] for b in brokers) == ["1", "2", "3"]
    voters = brokers[0]["environment"]["KAFKA_CONTROLLER_QUORUM_VOTERS"]
    assert voters == "1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093"


def test_demo_keys_writes_a_config_pinning_the_target_and_keeps_it(
    tmp_path: Path, demo_config: Path
) -> None:
    settings = load_settings(demo_config, environ={})
    [operator], [target] = settings.operators, settings.targets
    keys = demo_config.parent / "keys"
    assert operator.keys == [(keys / "operator_ed25519.pub").read_text().strip()]
    assert target.host == "target"
    assert target.user == "demo"
    assert target.key == str(keys / "gateway_to_target_ed25519")
    assert target.host_keys == [public_line(keys / "target_host_ed25519")]
    assert not target.trust_on_first_use  # pinned, not trusted on first use
    before = {p.name: p.read_bytes() for p in keys.iterdir()}
    config_before = demo_config.read_bytes()
    _run_demo_keys(demo_config.parent)  # a second start of the stack
    assert {p.name: p.read_bytes() for p in keys.iterdir()} == before
    assert demo_config.read_bytes() == config_before


def test_dockerfiles_copy_files_that_exist() -> None:
    root = COMPOSE.parent
    for dockerfile in (COMPOSE / "Dockerfile", COMPOSE / "target" / "Dockerfile"):
        for line in dockerfile.read_text().splitlines():
            match = re.match(r"COPY (?!--from)(.+) \S+$", line)
            if match:
                for source in match[1].split():
                    assert (root / source).exists(), f"{dockerfile.name}: COPY {source}"


def test_the_demo_targets_sshd_config_passes_sshd_t(tmp_path: Path) -> None:
    sshd = find_sshd()
    if sshd is None:
        unavailable("sshd is not installed (openssh-server)")
    host_key = tmp_path / "host"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)], check=True, timeout=30
    )
    config = (COMPOSE / "target" / "sshd_config").read_text()
    config = config.replace("/etc/ssh/ssh_host_ed25519_key", str(host_key))
    (tmp_path / "sshd_config").write_text(config)
    ensure_privsep_dir()
    result = subprocess.run(
        [sshd, "-t", "-f", str(tmp_path / "sshd_config")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr


ALERTS = COMPOSE / "prometheus" / "alerts.yml"
#: Where every series an alert may use is defined.
METRIC_SOURCES = ("consumer/metrics.py", "consumer/lagexporter.py", "producer/metrics.py")


def test_alert_rules_are_valid_and_use_series_that_exist() -> None:
    rules = [
        rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]
    ]
    assert len({rule["alert"] for rule in rules}) == len(rules)
    defined = "\n".join((ROOT / path).read_text() for path in METRIC_SOURCES)
    anchors = _anchors((ROOT / "docs" / "operations.md").read_text())
    for rule in rules:
        assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]
        for name in re.findall(r"sshtrail_[a-z_]+", rule["expr"]):
            base = name.removesuffix("_total")
            assert f'"{base}' in defined or f'"{name}"' in defined, f"{rule['alert']}: {name}"
        runbook = rule["annotations"]["runbook"]
        page, _, anchor = runbook.partition("#")
        assert (ROOT / page).exists(), runbook
        if page == "docs/operations.md":
            assert anchor in anchors, runbook
    promtool = shutil.which("promtool")
    if promtool is None:
        unavailable("promtool is not installed (apt-get install prometheus; make system-packages)")
    result = subprocess.run(
        [promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout, result.stdout


def _anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives the headings of ``markdown``."""
    found = set()
    for line in markdown.splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            found.add(re.sub(r"[^a-z0-9 _-]", "", title).replace(" ", "-"))
    return found


def test_compose_runs_the_kafka_version_the_tests_run() -> None:
    """One Kafka version: the image of both files is the release tests/kafka/pom.xml pins."""
    pinned = kafka_version()
    for name in ("compose.yaml", "compose.small.yaml"):
        brokers = [s for n, s in resolved(name)["services"].items() if n.startswith("kafka")]
        assert brokers, name
        assert {b["image"] for b in brokers} == {f"apache/kafka:{pinned}"}, name
