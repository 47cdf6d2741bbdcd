"""A real MinIO S3 server on 127.0.0.1, built from source by scripts/provision-minio.sh."""

from __future__ import annotations

import secrets
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from .process import ManagedProcess, free_port, provision

REGION = "us-east-1"


class MinioServer:
    """Start/stop MinIO; `stop()` then `start()` keeps the same port and data (outage tests)."""

    def __init__(self, workdir: Path, host: str = "127.0.0.1") -> None:
        """``host``: the address to serve on; the real test node's bridge address makes it
        reachable from pods (and from here) as an S3 outside the cluster."""
        self.binary = provision("minio") / "minio"
        self.port, self.console_port = free_port(), free_port()
        self.endpoint_url = f"http://{host}:{self.port}"
        self.access_key = "streamrec-test"
        self.secret_key = secrets.token_hex(16)
        workdir.mkdir(parents=True, exist_ok=True)
        self.process = ManagedProcess(
            "minio",
            [str(self.binary), "server", "--quiet", "--address", f"{host}:{self.port}",
             "--console-address", f"127.0.0.1:{self.console_port}", str(workdir / "data")],
            workdir / "minio.log",
            env={"MINIO_ROOT_USER": self.access_key, "MINIO_ROOT_PASSWORD": self.secret_key,
                 "MINIO_UPDATE": "off", "MINIO_BROWSER": "off", "MINIO_REGION": REGION},
        )

    def start(self, timeout: float = 60.0) -> None:
        self.process.start()
        self.process.wait_ready(self._ready, timeout)

    def _ready(self) -> bool:
        url = f"{self.endpoint_url}/minio/health/ready"
        with urllib.request.urlopen(url, timeout=2) as r:
            return bool(r.status == 200)

    def stop(self) -> None:
        self.process.stop()

    def client(self) -> Any:
        return boto3.client(
            "s3", endpoint_url=self.endpoint_url, aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key, region_name=REGION,
            config=Config(retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=3,
                          read_timeout=10, s3={"addressing_style": "path"}),
        )

    def log_tail(self) -> str:
        return self.process.log_tail()


@dataclass
class S3Bucket:
    """What a test gets from the `s3` fixture: a fresh bucket on the shared server."""

    server: MinioServer
    bucket: str

    @property
    def endpoint_url(self) -> str:
        return self.server.endpoint_url

    @property
    def access_key(self) -> str:
        return self.server.access_key

    @property
    def secret_key(self) -> str:
        return self.server.secret_key

    @property
    def region(self) -> str:
        return REGION

    def client(self) -> Any:
        return self.server.client()

    def env(self) -> dict[str, str]:
        """Environment for a child process (trainer, server) that talks to this bucket."""
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key,
                "AWS_REGION": REGION, "STREAMREC_S3_ENDPOINT": self.endpoint_url}
