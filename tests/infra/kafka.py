"""A real single-node Apache Kafka broker in KRaft mode, from the jars on Maven Central."""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path

from confluent_kafka.admin import AdminClient, NewTopic

from .process import InfraError, ManagedProcess, free_port, provision

PROPERTIES = """\
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{cport}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}{node_listener}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}{node_listener}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,NODE:PLAINTEXT
log.dirs={logs}
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
message.max.bytes=16777216
replica.fetch.max.bytes=16777216
"""

JVM_OPTS = ["-Xms128m", "-Xmx768m", "-XX:+UseSerialGC", "-Djava.awt.headless=true",
            "-Dorg.slf4j.simpleLogger.defaultLogLevel=info"]


class KafkaBroker:
    """Start, stop and restart (same ports, same data) a KRaft broker on 127.0.0.1.

    ``node_host``: also listen (and advertise) on that address, as listener ``NODE``: the real
    test node's bridge address, where pods reach Kafka as they reach a managed Kafka outside
    their cluster (``node_bootstrap``).
    """

    def __init__(self, workdir: Path, node_host: str | None = None) -> None:
        self.home = provision("kafka")
        self.workdir = workdir
        self.port, self.cport = free_port(), free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.node_bootstrap = f"{node_host}:{free_port()}" if node_host else None
        self.config = workdir / "server.properties"
        workdir.mkdir(parents=True, exist_ok=True)
        node_listener = f",NODE://{self.node_bootstrap}" if self.node_bootstrap else ""
        self.config.write_text(PROPERTIES.format(
            port=self.port, cport=self.cport, logs=workdir / "data", node_listener=node_listener
        ))
        self._classpath = f"{self.home / 'libs'}/*"
        self._format_storage()
        self.process = ManagedProcess(
            "kafka",
            ["java", *JVM_OPTS, "-cp", self._classpath, "kafka.Kafka", str(self.config)],
            workdir / "kafka.log",
        )
        self._admin: AdminClient | None = None

    def _format_storage(self) -> None:
        argv = ["java", "-cp", self._classpath, "kafka.tools.StorageTool", "format",
                "-t", uuid.uuid4().hex[:22], "-c", str(self.config), "--ignore-formatted"]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise InfraError(f"kafka: storage format failed:\n{proc.stdout}\n{proc.stderr}")

    def start(self, timeout: float = 90.0) -> None:
        self.process.start()
        self.process.wait_ready(self._ready, timeout)

    def _ready(self) -> bool:
        md = AdminClient({"bootstrap.servers": self.bootstrap}).list_topics(timeout=2)
        return len(md.brokers) == 1

    def stop(self) -> None:
        """Controlled shutdown (SIGTERM); `start` brings it back on the same ports and data."""
        self.process.stop(timeout=30)

    @property
    def running(self) -> bool:
        return self.process.running

    def kill(self) -> None:
        self.process.kill()

    @property
    def admin(self) -> AdminClient:
        if self._admin is None:
            self._admin = AdminClient({"bootstrap.servers": self.bootstrap})
        return self._admin

    def create_topic(self, name: str, partitions: int = 1, **config: str) -> str:
        futures = self.admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1, config=config)]
        )
        futures[name].result(timeout=30)
        # Wait (up to ~30 s) until the topic's metadata is visible to clients; an unknown topic
        # answers at once, so the loop has to pause between looks.
        for _ in range(150):
            md = self.admin.list_topics(topic=name, timeout=5)
            t = md.topics.get(name)
            if t is not None and t.error is None and len(t.partitions) == partitions:
                return name
            time.sleep(0.2)
        raise InfraError(f"kafka: topic {name} not visible after creation")

    def log_tail(self) -> str:
        return self.process.log_tail()
