"""The operator's C2PA signing identity: a certificate chain and its private key.

An operator with a certificate from a C2PA-recognised CA points stylebot at it (a PEM
chain, leaf first, and a PEM PKCS#8 key). One without gets a local one on first use: a
CA (10 years) and a signing certificate it issues (2 years), both EC P-256 (ES256), in
the signing directory. Manifests signed that way validate ("Valid"), but viewers do not
trust them ("Trusted") until the local CA's ``ca.pem`` is added to their trust list; a
real certificate needs no such step.

The signing certificate follows the C2PA certificate profile: not a CA, key usage
digitalSignature only, extended key usage emailProtection, subject and authority key
identifiers present. The private key is written with mode 0600.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "SigningIdentity",
    "ensure_signing_identity",
    "load_signing_identity",
    "signing_identity_for",
]

CHAIN_FILE = "signing-chain.pem"
KEY_FILE = "signing-key.pem"
CA_FILE = "ca.pem"
_CA_KEY_FILE = "ca-key.pem"


@dataclass(frozen=True)
class SigningIdentity:
    chain_pem: bytes  # the signing certificate first, then its issuers
    key_pem: bytes  # PKCS#8 private key of the signing certificate
    generated_locally: bool

    @property
    def subject(self) -> str:
        leaf = x509.load_pem_x509_certificates(self.chain_pem)[0]
        return leaf.subject.rfc4514_string()


def signing_identity_for(
    signing_dir: Path, chain_path: Path | None = None, key_path: Path | None = None
) -> SigningIdentity:
    """What the worker signs with: the operator's chain and key when both are configured,
    else the local identity in ``signing_dir`` (made on first use)."""
    if (chain_path is None) != (key_path is None):
        raise ValueError("set both the C2PA certificate chain and its key, or neither")
    if chain_path is not None and key_path is not None:
        return load_signing_identity(chain_path, key_path)
    return ensure_signing_identity(signing_dir)


def load_signing_identity(chain_path: Path, key_path: Path) -> SigningIdentity:
    """An operator's own certificate chain and key; raises ValueError if they don't fit."""
    chain = chain_path.read_bytes()
    key = key_path.read_bytes()
    certificates = x509.load_pem_x509_certificates(chain)
    private_key = serialization.load_pem_private_key(key, password=None)
    if certificates[0].public_key().public_numbers() != private_key.public_key().public_numbers():  # type: ignore[union-attr]
        raise ValueError(f"{key_path} is not the key of the first certificate in {chain_path}")
    return SigningIdentity(chain, key, generated_locally=False)


def ensure_signing_identity(
    directory: Path, organisation: str = "stylebot operator"
) -> SigningIdentity:
    """The local signing identity in ``directory``, created (CA included) if missing."""
    chain_path, key_path = directory / CHAIN_FILE, directory / KEY_FILE
    if chain_path.is_file() and key_path.is_file():
        identity = load_signing_identity(chain_path, key_path)
        return SigningIdentity(identity.chain_pem, identity.key_pem, generated_locally=True)
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, f"{organisation} local C2PA CA"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
        ]
    )
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.COMMON_NAME, f"{organisation} stylebot signer"),
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
                ]
            )
        )
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=730))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    ca_pem = ca.public_bytes(pem)
    chain = leaf.public_bytes(pem) + ca_pem
    key_pem = key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    ca_key_pem = ca_key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _write_private(directory / _CA_KEY_FILE, ca_key_pem)
    _write_private(key_path, key_pem)
    (directory / CA_FILE).write_bytes(ca_pem)
    chain_path.write_bytes(chain)  # last: its presence means the set is complete
    return SigningIdentity(chain, key_pem, generated_locally=True)


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _write_private(path: Path, data: bytes) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
