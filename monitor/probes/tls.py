"""TLS facts a probe reports: certificate expiry and protocol version.

Python 3.11 exposes only the peer's leaf certificate (not the chain), so
``probe_ssl_earliest_cert_expiry`` is the leaf's notAfter. It is read from the DER
bytes, which ``ssl`` hands over even when verification is off.
"""

from __future__ import annotations

import functools
import ssl

from cryptography import x509

from monitor.probes import config, output


def leaf_expiry(ssl_object: ssl.SSLObject | ssl.SSLSocket) -> float | None:
    """Unix time when the peer's certificate expires, or None without one."""
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        return None
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        return None
    return cert.not_valid_after_utc.timestamp()


def record(out: output.Recorder, ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> None:
    """Write blackbox_exporter's TLS gauges for an established connection."""
    if ssl_object is None:
        return
    expiry = leaf_expiry(ssl_object)
    if expiry is not None:
        out.gauge(
            "probe_ssl_earliest_cert_expiry",
            "Returns last SSL chain expiry in unixtime",
            expiry,
        )
    version = ssl_object.version()
    if version:
        out.labelled(
            "probe_tls_version_info",
            "Returns the TLS version used or NaN when unknown",
            {"version": version.replace("TLSv", "TLS ")},
            1,
        )


@functools.cache
def context(settings: config.TLSConfig) -> ssl.SSLContext:
    """The SSL context of a module's ``tls_config``, built once and shared."""
    return settings.context()
