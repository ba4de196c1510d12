"""The operator's C2PA signing identity: a certificate chain and its private key.

An operator with a certificate from a C2PA-recognised CA points stylebot at it (a PEM
chain, leaf first, and a PEM PKCS#8 key). One without gets a local one on first use: a
CA and a signing certificate it issues, both EC P-256 (ES256) and long-lived (30 and 25
years: a community's lifetime, since a manifest without a trusted timestamp reads
"Invalid" once its certificate has expired), in the signing directory. A local signing
certificate with less than :data:`RENEW_BEFORE` left is re-issued by the same CA.
Manifests signed that way validate ("Valid"), but viewers do not trust them ("Trusted")
until the local CA's ``ca.pem`` is added to their trust list; a real certificate needs no
such step.

The signing certificate follows the C2PA certificate profile: not a CA, key usage
digitalSignature only, extended key usage emailProtection, subject and authority key
identifiers present. The private key is written with mode 0600.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CHAIN_FILE = "signing-chain.pem"
KEY_FILE = "signing-key.pem"
CA_FILE = "ca.pem"
_CA_KEY_FILE = "ca-key.pem"
CA_LIFETIME = datetime.timedelta(days=30 * 365 + 7)
SIGNER_LIFETIME = datetime.timedelta(days=25 * 365 + 6)
#: doctor warns, and the local identity renews its signing certificate, this long before
#: the signing certificate expires.
RENEW_BEFORE = datetime.timedelta(days=90)


@dataclass(frozen=True)
class SigningIdentity:
    chain_pem: bytes  # the signing certificate first, then its issuers
    key_pem: bytes  # PKCS#8 private key of the signing certificate
    generated_locally: bool
    # An RFC 3161 time-stamping authority: manifests then carry a trusted time and
    # stay valid after the signing certificate expires. None: no timestamp.
    tsa_url: str | None = None

    @property
    def subject(self) -> str:
        return self.certificate.subject.rfc4514_string()

    @property
    def certificate(self) -> x509.Certificate:
        """The signing certificate (first of the chain)."""
        return x509.load_pem_x509_certificates(self.chain_pem)[0]


def signing_identity_for(
    signing_dir: Path,
    chain_path: Path | None = None,
    key_path: Path | None = None,
    tsa_url: str | None = None,
) -> SigningIdentity:
    """What the worker signs with: the operator's chain and key when both are configured,
    else the local identity in ``signing_dir`` (made on first use); timestamped by
    ``tsa_url`` when set."""
    if (chain_path is None) != (key_path is None):
        raise ValueError("set both the C2PA certificate chain and its key, or neither")
    if chain_path is not None and key_path is not None:
        identity = load_signing_identity(chain_path, key_path)
    else:
        identity = ensure_signing_identity(signing_dir)
    return dataclasses.replace(identity, tsa_url=tsa_url or None)


def load_signing_identity(chain_path: Path, key_path: Path) -> SigningIdentity:
    """An operator's own certificate chain and key; raises ValueError if they don't fit."""
    chain = chain_path.read_bytes()
    key = key_path.read_bytes()
    certificates = x509.load_pem_x509_certificates(chain)
    private_key = serialization.load_pem_private_key(key, password=None)
    # Compared as encoded public keys: that works for every key type (Ed25519 keys
    # have no public_numbers()).
    if _public_key_der(certificates[0].public_key()) != _public_key_der(private_key.public_key()):
        raise ValueError(f"{key_path} is not the key of the first certificate in {chain_path}")
    return SigningIdentity(chain, key, generated_locally=False)


def _public_key_der(key: PublicKeyTypes) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def ensure_signing_identity(
    directory: Path,
    organisation: str = "stylebot operator",
    *,
    signer_lifetime: datetime.timedelta = SIGNER_LIFETIME,
) -> SigningIdentity:
    """The local signing identity in ``directory``, created (CA included) if missing, its
    signing certificate re-issued by the CA when less than :data:`RENEW_BEFORE` is left."""
    chain_path, key_path = directory / CHAIN_FILE, directory / KEY_FILE
    now = datetime.datetime.now(datetime.UTC)
    if chain_path.is_file() and key_path.is_file():
        identity = load_signing_identity(chain_path, key_path)
        local = SigningIdentity(identity.chain_pem, identity.key_pem, generated_locally=True)
        if (
            local.certificate.not_valid_after_utc - now > RENEW_BEFORE
            or not (directory / _CA_KEY_FILE).is_file()
        ):
            return local
        ca_key = serialization.load_pem_private_key(
            (directory / _CA_KEY_FILE).read_bytes(), password=None
        )
        ca = x509.load_pem_x509_certificate((directory / CA_FILE).read_bytes())
        if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
            return local
    else:
        directory.mkdir(parents=True, exist_ok=True)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca = _local_ca(ca_key, organisation, now)
        _write_private(directory / _CA_KEY_FILE, _pkcs8(ca_key))
        (directory / CA_FILE).write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    key = ec.generate_private_key(ec.SECP256R1())
    # Never past the CA's own end: a chain is only as valid as its shortest link.
    until = min(now + signer_lifetime, ca.not_valid_after_utc)
    leaf = _signing_certificate(key, ca_key, ca, organisation, now, until)
    pem = serialization.Encoding.PEM
    chain = leaf.public_bytes(pem) + ca.public_bytes(pem)
    key_pem = _pkcs8(key)
    # Key first, chain last: a first run's set is complete once the chain exists; a
    # renewal replaces each file whole, so a reader never sees half a file.
    key_partial = key_path.with_suffix(".partial")
    _write_private(key_partial, key_pem)
    key_partial.replace(key_path)
    chain_partial = chain_path.with_suffix(".partial")
    chain_partial.write_bytes(chain)
    chain_partial.replace(chain_path)
    return SigningIdentity(chain, key_pem, generated_locally=True)


def _local_ca(
    ca_key: ec.EllipticCurvePrivateKey, organisation: str, now: datetime.datetime
) -> x509.Certificate:
    ca_name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, f"{organisation} local C2PA CA"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
        ]
    )
    return (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )


def _signing_certificate(
    key: ec.EllipticCurvePrivateKey,
    ca_key: ec.EllipticCurvePrivateKey,
    ca: x509.Certificate,
    organisation: str,
    now: datetime.datetime,
    until: datetime.datetime,
) -> x509.Certificate:
    return (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.COMMON_NAME, f"{organisation} stylebot signer"),
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
                ]
            )
        )
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(until)
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


def _pkcs8(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


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
