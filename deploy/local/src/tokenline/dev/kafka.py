"""A single-node KRaft Kafka broker run from Maven Central jars on loopback.

The jars are resolved once by Maven from ``deploy/local/pom.xml`` into a cache outside the
repository (``$TOKENLINE_CACHE_DIR`` or ``~/.cache/tokenline``), then ``kafka.Kafka`` runs from
there as one combined broker+controller node with a static quorum.
"""

from __future__ import annotations

import base64
import logging
import os
import shutil
import subprocess
import time
import uuid
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from confluent_kafka.admin import AdminClient

from tokenline.dev._proc import ServiceError, free_port, pid_alive, remember, tail, terminate_group

if TYPE_CHECKING:
    from collections.abc import Mapping

log = logging.getLogger(__name__)

KAFKA_VERSION = "3.9.1"
READY_TIMEOUT = 60.0
STARTED_MESSAGE = "Kafka Server started"
POM = Path(__file__).resolve().parents[3] / "pom.xml"
_REQUIRED_JARS = ("kafka_2.13-{v}.jar", "kafka-clients-{v}.jar", "reload4j-1.2.25.jar")
_JVM_FLAGS = (
    "-server",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-XX:MaxInlineLevel=15",
    "-Djava.awt.headless=true",
)
_LOG4J = """\
log4j.rootLogger=WARN, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.server.KafkaRaftServer=INFO
"""


@dataclass(frozen=True)
class KafkaNode:
    """A running broker: its process, address and files."""

    pid: int
    bootstrap: str
    home: str
    log_file: str
    sasl_bootstrap: str | None = None
    """The SASL_PLAINTEXT (PLAIN) listener, when the node was started with ``sasl_users``."""

    def to_json(self) -> dict[str, Any]:
        """Return the node as a JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> KafkaNode:
        """Build a node from :meth:`to_json` output."""
        return cls(
            pid=int(data["pid"]),
            bootstrap=str(data["bootstrap"]),
            home=str(data["home"]),
            log_file=str(data["log_file"]),
            sasl_bootstrap=data.get("sasl_bootstrap"),
        )


def cache_root() -> Path:
    """Return the cache directory for downloaded tooling (outside the repository)."""
    override = os.environ.get("TOKENLINE_CACHE_DIR")
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "tokenline"


def ensure_jars(version: str = KAFKA_VERSION) -> Path:
    """Return the directory holding the broker's jars, resolving them with Maven when missing."""
    libs = cache_root() / f"kafka-{version}" / "libs"
    if all((libs / jar.format(v=version)).is_file() for jar in _REQUIRED_JARS):
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        msg = "Maven (mvn) is needed once to fetch the Kafka jars: apt-get install maven"
        raise ServiceError(msg)
    staging = libs.with_name(f"libs.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.parent.mkdir(parents=True, exist_ok=True)
    log.info("resolving Kafka %s jars with Maven into %s", version, libs)
    cmd = [
        mvn,
        "-B",
        "-q",
        "-f",
        str(POM),
        "org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy-dependencies",
        "-DincludeScope=runtime",
        f"-Dkafka.version={version}",
        f"-DoutputDirectory={staging}",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        msg = f"mvn failed ({done.returncode}):\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
        raise ServiceError(msg)
    shutil.rmtree(libs, ignore_errors=True)
    staging.rename(libs)
    return libs


def cluster_id() -> str:
    """Return a fresh 22-character cluster id in Kafka's own format.

    Like Kafka's ``Uuid.randomUuid()``, an id that starts with ``-`` is drawn again: the storage
    tool's argument parser would read it as an option.
    """
    while True:
        candidate = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode("ascii")
        if not candidate.startswith("-"):
            return candidate


def _server_properties(
    home: Path, port: int, ctrl_port: int, sasl: tuple[int, Mapping[str, str]] | None = None
) -> str:
    settings = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{ctrl_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{ctrl_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(home / "data"),
        "num.partitions": "4",
        "auto.create.topics.enable": "true",
        "delete.topic.enable": "true",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "1",
        "group.initial.rebalance.delay.ms": "0",
        "log.cleaner.dedupe.buffer.size": "2097152",
    }
    if sasl is not None:
        sasl_port, users = sasl
        listener = f"SASL_PLAINTEXT://127.0.0.1:{sasl_port}"
        settings["listeners"] += f",{listener}"
        settings["advertised.listeners"] += f",{listener}"
        settings["listener.security.protocol.map"] += ",SASL_PLAINTEXT:SASL_PLAINTEXT"
        settings["sasl.enabled.mechanisms"] = "PLAIN"
        accounts = " ".join(f'user_{name}="{password}"' for name, password in users.items())
        settings["listener.name.sasl_plaintext.plain.sasl.jaas.config"] = (
            f"org.apache.kafka.common.security.plain.PlainLoginModule required {accounts};"
        )
    return "".join(f"{key}={value}\n" for key, value in settings.items())


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if not java:
        msg = "a Java 17+ runtime is needed for Kafka: apt-get install openjdk-17-jre-headless"
        raise ServiceError(msg)
    return java


def start(
    home: Path, version: str = KAFKA_VERSION, *, sasl_users: Mapping[str, str] | None = None
) -> KafkaNode:
    """Format a fresh KRaft log dir under ``home``, start the broker detached and wait for it.

    ``sasl_users`` (name → password) adds a SASL_PLAINTEXT listener with the PLAIN mechanism
    for those accounts (``KafkaNode.sasl_bootstrap``), beside the PLAINTEXT one.
    """
    libs = ensure_jars(version)
    java = _java()
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    port, ctrl_port, sasl_port = free_port(), free_port(), free_port()
    while len({port, ctrl_port, sasl_port}) < 3:
        ctrl_port, sasl_port = free_port(), free_port()
    sasl = (sasl_port, sasl_users) if sasl_users else None
    props = home / "server.properties"
    props.write_text(_server_properties(home, port, ctrl_port, sasl), encoding="utf-8")
    log4j = home / "log4j.properties"
    log4j.write_text(_LOG4J, encoding="utf-8")
    classpath = f"{libs}{os.sep}*"
    logging_flags = [f"-Dlog4j.configuration=file:{log4j}", f"-Dkafka.logs.dir={home}"]

    fmt = [java, "-Xmx256m", "-XX:TieredStopAtLevel=1", *logging_flags, "-cp", classpath]
    fmt += ["kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id()}", "-c", str(props)]
    done = subprocess.run(fmt, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        msg = f"kafka-storage format failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
        raise ServiceError(msg)

    node = _launch(home, bootstrap=f"127.0.0.1:{port}", version=version)
    return replace(node, sasl_bootstrap=f"127.0.0.1:{sasl_port}") if sasl else node


def _launch(home: Path, bootstrap: str, version: str) -> KafkaNode:
    libs = ensure_jars(version)
    props = home / "server.properties"
    log4j = home / "log4j.properties"
    log_file = home / "kafka.log"
    logging_flags = [f"-Dlog4j.configuration=file:{log4j}", f"-Dkafka.logs.dir={home}"]
    cmd = [_java(), "-Xms256m", "-Xmx512m", *_JVM_FLAGS, *logging_flags]
    cmd += ["-cp", f"{libs}{os.sep}*", "kafka.Kafka", str(props)]
    with log_file.open("ab") as out:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=home,
            start_new_session=True,
        )
    remember(proc)
    node = KafkaNode(pid=proc.pid, bootstrap=bootstrap, home=str(home), log_file=str(log_file))
    try:
        wait_ready(node)
    except BaseException:
        terminate_group(proc.pid, timeout=5)
        raise
    log.info("Kafka %s ready at %s (pid %d)", version, node.bootstrap, node.pid)
    return node


def restart(node: KafkaNode, version: str = KAFKA_VERSION) -> KafkaNode:
    """Start a stopped node again on its own ports and log dir (its data is kept)."""
    again = _launch(Path(node.home), bootstrap=node.bootstrap, version=version)
    return replace(again, sasl_bootstrap=node.sasl_bootstrap)


def answers(bootstrap: str, timeout: float = 2.0) -> bool:
    """Tell whether an AdminClient sees at least one broker at ``bootstrap``."""
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    try:
        metadata = admin.list_topics(timeout=timeout)
    except Exception:  # noqa: BLE001 - any client error means "not answering"
        return False
    return len(metadata.brokers) >= 1


def wait_ready(node: KafkaNode, timeout: float = READY_TIMEOUT) -> None:
    """Wait for the ``Kafka Server started`` log line and a broker in the metadata."""
    log_file = Path(node.log_file)
    deadline = time.monotonic() + timeout
    started = False
    while time.monotonic() < deadline:
        if not pid_alive(node.pid):
            msg = f"Kafka exited during startup; log tail:\n{tail(log_file)}"
            raise ServiceError(msg)
        if not started:
            started = STARTED_MESSAGE in log_file.read_text(encoding="utf-8", errors="replace")
        if started and answers(node.bootstrap, timeout=min(5.0, deadline - time.monotonic())):
            return
        time.sleep(0.1)
    msg = f"Kafka not ready after {timeout:.0f} s; log tail:\n{tail(log_file)}"
    raise ServiceError(msg)


def is_running(node: KafkaNode) -> bool:
    """Tell whether the recorded broker process lives and answers."""
    return pid_alive(node.pid) and answers(node.bootstrap)


def stop(node: KafkaNode, timeout: float = 20.0) -> None:
    """Stop the broker (SIGTERM its process group, SIGKILL after ``timeout`` s)."""
    terminate_group(node.pid, timeout=timeout)
