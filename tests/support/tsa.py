"""A real RFC 3161 time-stamping authority on 127.0.0.1, for tests without the internet.

It answers ``application/timestamp-query`` POSTs as a public TSA does: a TimeStampResp
whose token is CMS SignedData over a TSTInfo (the request's message imprint and nonce,
the time), signed by a TSA certificate (extended key usage timeStamping, critical) that
its own CA issued, with the ESS signing-certificate-v2 attribute RFC 5816 asks for.
Built from asn1crypto's ASN.1 types and signed with ``cryptography``.
"""

from __future__ import annotations

import datetime
import hashlib
import itertools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from asn1crypto import algos, cms, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Any policy OID will do for a test TSA (this is under the "example" arc of RFC 7229).
_POLICY = "1.3.6.1.5.5.7.13.1"


@dataclass
class TimeStampAuthority:
    url: str
    ca_pem: bytes
    requests: list[bytes] = field(default_factory=list)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _tsa_certificates() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate, x509.Certificate]:
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("test TSA root"))
        .issuer_name(_name("test TSA root"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name("test TSA"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, True, False, False, False, False, False, False, False),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return key, leaf, ca


def _time_stamp_response(
    request_der: bytes,
    key: ec.EllipticCurvePrivateKey,
    chain: list[x509.Certificate],
    serial: int,
) -> bytes:
    request = tsp.TimeStampReq.load(request_der)
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    info: dict[str, object] = {
        "version": "v1",
        "policy": _POLICY,
        "message_imprint": request["message_imprint"],
        "serial_number": serial,
        "gen_time": now,
    }
    if request["nonce"].native is not None:
        info["nonce"] = request["nonce"].native
    tst_info = tsp.TSTInfo(info)
    certificates = [
        asn1_x509.Certificate.load(c.public_bytes(serialization.Encoding.DER)) for c in chain
    ]
    leaf = certificates[0]
    signed_attrs = cms.CMSAttributes(
        [
            cms.CMSAttribute({"type": "content_type", "values": ["tst_info"]}),
            cms.CMSAttribute({"type": "signing_time", "values": [cms.Time({"utc_time": now})]}),
            cms.CMSAttribute(
                {"type": "message_digest", "values": [hashlib.sha256(tst_info.dump()).digest()]}
            ),
            cms.CMSAttribute(
                {
                    "type": "signing_certificate_v2",
                    "values": [
                        tsp.SigningCertificateV2(
                            {
                                "certs": [
                                    tsp.ESSCertIDv2(
                                        {
                                            "hash_algorithm": {"algorithm": "sha256"},
                                            "cert_hash": hashlib.sha256(leaf.dump()).digest(),
                                        }
                                    )
                                ]
                            }
                        )
                    ],
                }
            ),
        ]
    )
    # CMS signs the DER of the attributes as a SET (tag 0x31), not as [0] IMPLICIT.
    signature = key.sign(signed_attrs.dump(), ec.ECDSA(hashes.SHA256()))
    signer = cms.SignerInfo(
        {
            "version": "v1",
            "sid": cms.SignerIdentifier(
                {
                    "issuer_and_serial_number": cms.IssuerAndSerialNumber(
                        {"issuer": leaf.issuer, "serial_number": leaf.serial_number}
                    )
                }
            ),
            "digest_algorithm": algos.DigestAlgorithm({"algorithm": "sha256"}),
            "signed_attrs": signed_attrs,
            "signature_algorithm": algos.SignedDigestAlgorithm({"algorithm": "sha256_ecdsa"}),
            "signature": signature,
        }
    )
    signed_data = cms.SignedData(
        {
            "version": "v3",
            "digest_algorithms": [algos.DigestAlgorithm({"algorithm": "sha256"})],
            "encap_content_info": {"content_type": "tst_info", "content": tst_info},
            "certificates": certificates if request["cert_req"].native else [],
            "signer_infos": [signer],
        }
    )
    response = tsp.TimeStampResp(
        {
            "status": {"status": "granted"},
            "time_stamp_token": {"content_type": "signed_data", "content": signed_data},
        }
    )
    return response.dump()


@contextmanager
def time_stamp_authority() -> Iterator[TimeStampAuthority]:
    """A TSA serving on a free port of 127.0.0.1 until the block ends."""
    key, leaf, ca = _tsa_certificates()
    serials = itertools.count(1)
    authority = TimeStampAuthority(url="", ca_pem=ca.public_bytes(serialization.Encoding.PEM))

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            authority.requests.append(body)
            try:
                reply = _time_stamp_response(body, key, [leaf, ca], next(serials))
            except ValueError:
                self.send_error(400, "not a TimeStampReq")
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/timestamp-reply")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: object) -> None:
            pass  # the test's output is not the place for an access log

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    authority.url = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        yield authority
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
