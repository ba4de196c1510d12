"""Doctor checks of content-credential signing: the certificate, and how long signatures last."""

from __future__ import annotations

import tempfile
from pathlib import Path

from stylebot.config import Settings
from stylebot.doctor.results import CheckResult, fail, ok, warn


def check_signing_certificate(settings: Settings) -> CheckResult:
    """The C2PA identity outputs are signed with: the operator's, or the local CA's.

    Only reads: a missing local identity is made by the first front end or worker.
    """
    from stylebot.provenance.signing import CA_FILE, CHAIN_FILE, load_signing_identity

    name = "signing certificate"
    chain, key = settings.c2pa_cert_chain, settings.c2pa_private_key
    if (chain is None) != (key is None):
        return fail(
            name,
            "only one of the certificate chain and its key is set",
            "set both STYLEBOT_C2PA_CERT_CHAIN and STYLEBOT_C2PA_PRIVATE_KEY, or neither",
        )
    if chain is not None and key is not None:
        try:
            load_signing_identity(chain, key)
        except (OSError, ValueError) as exc:
            return fail(
                name,
                f"{chain} with {key} cannot sign: {exc}",
                "point both settings at the PEM chain and the private key of its first certificate",
            )
        return ok(name, f"{chain} (your certificate) signs every output")
    local = settings.signing_dir
    if not (local / CHAIN_FILE).is_file():
        return warn(
            name,
            "not configured: a local CA and signing certificate will be made in "
            f"{local} on first start",
            "for manifests that viewers trust, set STYLEBOT_C2PA_CERT_CHAIN and "
            "STYLEBOT_C2PA_PRIVATE_KEY",
        )
    return warn(
        name,
        f"signing with the local CA in {local}: viewers trust it only if told to",
        f"add {local / CA_FILE} to your viewers' trust lists, or configure a real "
        "certificate (STYLEBOT_C2PA_CERT_CHAIN, STYLEBOT_C2PA_PRIVATE_KEY)",
    )


def check_signature_lifetime(settings: Settings) -> CheckResult:
    """How long outputs' C2PA manifests stay valid: until the signing certificate expires
    (warned :data:`~stylebot.provenance.signing.RENEW_BEFORE` ahead), or for good with a
    trusted timestamp from the time-stamping authority, which is asked for one here."""
    import datetime

    from cryptography import x509

    from stylebot.provenance.content_credentials import probe_time_stamping
    from stylebot.provenance.signing import CHAIN_FILE, RENEW_BEFORE

    name = "signature lifetime"
    tsa = settings.c2pa_tsa_url
    stamped = "no time-stamping authority"
    if tsa:
        with tempfile.TemporaryDirectory() as scratch:
            try:
                when = probe_time_stamping(tsa, Path(scratch))
            except ValueError as exc:
                return fail(
                    name,
                    f"time-stamping authority {tsa}: {exc}",
                    "point STYLEBOT_C2PA_TSA_URL at an RFC 3161 time-stamping authority the "
                    "workers can reach, or unset it (manifests then expire with the certificate)",
                )
        stamped = f"timestamped by {tsa} (it answered {when})"
    own = settings.c2pa_cert_chain is not None
    chain = settings.c2pa_cert_chain or settings.signing_dir / CHAIN_FILE
    renew = (
        "renew it with your CA and point STYLEBOT_C2PA_CERT_CHAIN and "
        "STYLEBOT_C2PA_PRIVATE_KEY at the new one"
        if own
        else "restart the workers: they re-issue the local signing certificate from the local CA"
    )
    no_tsa_fix = (
        "set STYLEBOT_C2PA_TSA_URL to an RFC 3161 time-stamping authority viewers trust "
        "(one on the C2PA trust list): manifests then outlive the certificate"
    )
    if not chain.is_file():
        if own:  # check_signing_certificate says what is wrong with it
            return fail(name, f"{chain} cannot be read", "see the signing certificate check")
        found = f"{stamped}; the local signing certificate is made on first start"
        return ok(name, found) if tsa else warn(name, found, no_tsa_fix)
    try:
        leaf = x509.load_pem_x509_certificates(chain.read_bytes())[0]
    except (OSError, ValueError) as exc:
        return fail(name, f"{chain} cannot be read: {exc}", "see the signing certificate check")
    expires = leaf.not_valid_after_utc
    left = expires - datetime.datetime.now(datetime.UTC)
    when = expires.date().isoformat()
    if left.total_seconds() <= 0:
        return fail(
            name,
            f"the signing certificate expired on {when}: new outputs' manifests read Invalid",
            renew,
        )
    if left < RENEW_BEFORE:
        return warn(
            name,
            f"the signing certificate expires on {when}, in {left.days} days; {stamped}",
            renew,
        )
    if not tsa:
        return warn(
            name,
            f"{stamped}: every manifest reads Invalid once the signing certificate "
            f"expires on {when}",
            no_tsa_fix,
        )
    return ok(name, f"{stamped}; the signing certificate is valid until {when}")
