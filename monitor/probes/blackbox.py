"""blackbox_exporter's option names, so its ``blackbox.yml`` loads as a probe file.

A key our models do not know is either a typo ("unknown key") or an option of
blackbox_exporter that conea-monitor does not implement: the latter is named as such
(``blackbox_exporter option 'oauth2' is not supported by conea-monitor``), so nothing
in a user's file is silently ignored and a typo is not mistaken for a missing feature.

The table lists, per section, every key blackbox_exporter's configuration accepts
(its ``config/config.go`` and the HTTP client and TLS settings of
``prometheus/common/config`` that its ``http:`` section inlines), whether or not we
support it. ``config.parse`` asks :func:`unsupported` about each unknown key.
"""

from __future__ import annotations

from collections.abc import Sequence

PROBERS = ("http", "tcp", "icmp", "dns", "grpc", "unix", "websocket")

_TLS = (
    "ca ca_file ca_ref cert cert_file cert_ref key key_file key_ref server_name "
    "insecure_skip_verify min_version max_version"
)
_RRS = (
    "fail_if_matches_regexp fail_if_all_match_regexp fail_if_not_matches_regexp "
    "fail_if_none_matches_regexp"
)
_OPTIONS = {
    "module": "prober timeout http tcp icmp dns grpc unix websocket",
    "http": (
        "valid_status_codes valid_http_versions preferred_ip_protocol ip_protocol_fallback "
        "skip_resolve_phase_with_proxy no_follow_redirects fail_if_ssl fail_if_not_ssl "
        "method headers fail_if_body_matches_regexp fail_if_body_not_matches_regexp "
        "fail_if_body_json_matches_cel fail_if_body_json_not_matches_cel "
        "fail_if_header_matches fail_if_header_not_matches body body_file compression "
        "body_size_limit enable_http3 "
        # prometheus/common's HTTPClientConfig, inlined
        "basic_auth authorization oauth2 bearer_token bearer_token_file tls_config "
        "follow_redirects enable_http2 proxy_url no_proxy proxy_from_environment "
        "proxy_connect_header http_headers"
    ),
    "tcp": "preferred_ip_protocol ip_protocol_fallback source_ip_address query_response "
    "tls tls_config",
    "query_response": "expect expect_bytes labels send starttls",
    "icmp": "preferred_ip_protocol ip_protocol_fallback source_ip_address payload_size "
    "dont_fragment ttl",
    "dns": (
        "preferred_ip_protocol ip_protocol_fallback dns_over_tls tls_config source_ip_address "
        "transport_protocol query_class query_name query_type recursion_desired valid_rcodes "
        "validate_answer_rrs validate_authority_rrs validate_additional_rrs"
    ),
    "validate_answer_rrs": _RRS,
    "validate_authority_rrs": _RRS,
    "validate_additional_rrs": _RRS,
    "grpc": "service tls tls_config ip_protocol_fallback preferred_ip_protocol metadata",
    "tls_config": _TLS,
    "basic_auth": "username username_file username_ref password password_file password_ref",
    "authorization": "type credentials credentials_file credentials_ref",
    "fail_if_header_matches": "header regexp allow_missing",
    "fail_if_header_not_matches": "header regexp allow_missing",
}
OPTIONS: dict[str, frozenset[str]] = {
    section: frozenset(names.split()) for section, names in _OPTIONS.items()
}
"""Section -> every key blackbox_exporter accepts there."""


def section(loc: Sequence[int | str]) -> str | None:
    """The blackbox section a key at ``loc`` (a pydantic error location) sits in:
    ``("modules", "web", "http", "oauth2")`` -> ``"http"``."""
    if len(loc) < 3 or loc[0] != "modules":
        return None
    if len(loc) == 3:
        return "module"
    parents = [part for part in loc[2:-1] if isinstance(part, str)]
    return parents[-1] if parents else None


def unsupported(loc: Sequence[int | str]) -> str | None:
    """The message for an unknown key at ``loc`` that is a blackbox_exporter option,
    or None when it is not one (a typo: "unknown key")."""
    key = loc[-1] if loc else None
    where = section(loc)
    if not isinstance(key, str) or where is None or key not in OPTIONS.get(where, ()):
        return None
    return f"blackbox_exporter option {key!r} is not supported by conea-monitor"
