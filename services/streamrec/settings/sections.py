"""Small settings for the adapters: each takes the few fields it uses, not the whole `Config`.

``Config.kafka`` builds a :class:`KafkaSettings`; ``adapters.kafka`` needs nothing else.
``Config.s3`` builds an :class:`S3Settings` for the S3 snapshot store (``adapters.stores``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import BY_NAME

__all__ = ["KafkaSettings", "S3Settings"]


def _default(name: str) -> Any:
    return BY_NAME[name].default


@dataclass(frozen=True)
class KafkaSettings:
    """How to reach the Kafka cluster (rows ``bootstrap_servers`` and ``kafka_*``)."""

    bootstrap_servers: str = _default("bootstrap_servers")
    security_protocol: str = _default("kafka_security_protocol")
    sasl_mechanism: str | None = None
    username: str | None = None
    password: str | None = None

    def client_config(self) -> dict[str, str]:
        """librdkafka settings shared by every consumer and producer of a service."""
        conf = {"bootstrap.servers": self.bootstrap_servers,
                "security.protocol": self.security_protocol}
        if self.sasl_mechanism:
            conf["sasl.mechanism"] = self.sasl_mechanism
        if self.username is not None:
            conf["sasl.username"] = self.username
        if self.password is not None:
            conf["sasl.password"] = self.password
        return conf


@dataclass(frozen=True)
class S3Settings:
    """How to reach the S3 snapshot store (row ``s3_endpoint``). ``endpoint``: the endpoint
    URL (e.g. ``http://minio:9000``), ``None`` for AWS's own; ``region``: the signing region,
    ``None`` for boto3's (``AWS_REGION``; not a row). Credentials come from boto3's chain."""

    endpoint: str | None = _default("s3_endpoint")
    region: str | None = None
