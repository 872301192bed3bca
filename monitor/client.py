"""A small synchronous client for the running service's HTTP API (the command line's).

Where the service is: ``--url``, else ``$CONEA_MONITOR_URL``, else the address ``serve``
listens on by default. The token (viewer or operator: the service decides what it
allows): ``--token-file``, else ``$CONEA_MONITOR_TOKEN``, else the file named by
``$CONEA_MONITOR_TOKEN_FILE``; an empty one is an error, not "no token" (fail closed).

Every failure is a :class:`ServiceError` that says what failed and what to do: nobody
answering at the address, a refused token (naming where it came from, never the token),
or the service's own problem+json answer. Answers are bounded (``MAX_RESPONSE_BYTES``)
and redirects are not followed (they would carry the token elsewhere).
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import orjson

from monitor import settings as settings_mod
from monitor.errors import MonitorError

URL_ENV = "CONEA_MONITOR_URL"
TOKEN_ENV = "CONEA_MONITOR_TOKEN"  # noqa: S105 (a variable's name)
TOKEN_FILE_ENV = "CONEA_MONITOR_TOKEN_FILE"  # noqa: S105 (a variable's name)
DEFAULT_URL = f"http://127.0.0.1:{settings_mod.DEFAULT_PORT}"
MAX_URL_CHARS = 2048
MAX_RESPONSE_BYTES = 8 * 1024 * 1024
MAX_MESSAGE_CHARS = 2000
DIRECT = "or change a store directly with --config/--store"


class ServiceError(MonitorError):
    """The service could not be reached or refused the request; ``status`` is the HTTP
    status when it answered. The message never includes the token."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def _check_url(url: str, source: str) -> str:
    parsed = urllib.parse.urlsplit(url) if len(url) <= MAX_URL_CHARS else None
    if (
        parsed is None
        or parsed.scheme not in ("http", "https")
        or not parsed.hostname
        or parsed.query
        or parsed.fragment
        or not url.isprintable()
    ):
        raise ServiceError(
            f"{source}: {url[:200]!r} is not the service's address, "
            f"such as {DEFAULT_URL} or https://conea.example.org"
        )
    if parsed.username or parsed.password:
        raise ServiceError(f"{source}: no credentials in the address; give them with --token-file")
    try:
        parsed.port  # noqa: B018 (validates the port)
    except ValueError:
        raise ServiceError(f"{source}: {url[:200]!r} has an invalid port") from None
    return url.rstrip("/")


def _read_token_file(path: Path, source: str) -> str:
    limit = settings_mod.MAX_CREDENTIAL_CHARS * 4
    try:
        with path.open("rb") as handle:
            raw = handle.read(limit + 3)
    except OSError as exc:
        raise ServiceError(f"{source}: cannot read {str(path)!r}: {exc.strerror}") from None
    if len(raw) > limit + 2:
        raise ServiceError(f"{source} {str(path)!r}: longer than a token can be")
    try:
        token = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ServiceError(f"{source} {str(path)!r}: not UTF-8 text") from None
    if not token:
        raise ServiceError(f"{source} {str(path)!r} is empty: put the token in it")
    return token


def _problem(body: bytes) -> str:
    """The ``error`` of a problem+json answer, with its details' fields and reasons."""
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("error"), str):
        text = body.decode("utf-8", "replace").strip()
        return text[:200] or "(no explanation)"
    message: str = data["error"]
    details = data.get("details")
    if isinstance(details, list):
        parts = [
            f"{d.get('field')}: {d.get('reason')}"
            for d in details[:10]
            if isinstance(d, dict) and "field" in d
        ]
        if parts:
            message += " (" + "; ".join(parts) + ")"
    return message


class ServiceClient:
    """The service's API at ``url``, with ``token`` as a bearer token when given."""

    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        timeout: float = 10.0,
        token_source: str = "the token given",  # noqa: S107 (a description)
    ) -> None:
        self.url = _check_url(url, "the service's address")
        self._token = token
        self.token_source = token_source if token is not None else "no token"
        self._timeout = timeout

    def __repr__(self) -> str:
        return f"ServiceClient({self.url!r}, token from {self.token_source})"

    @classmethod
    def from_args(cls, url: str | None, token_file: Path | None) -> ServiceClient:
        """The client the flags and the environment describe (see the module's doc)."""
        env = os.environ
        if url is not None:
            url = _check_url(url, "--url")
        elif env.get(URL_ENV):
            url = _check_url(env[URL_ENV], f"${URL_ENV}")
        else:
            url = DEFAULT_URL
        token: str | None = None
        source = "no token"
        if token_file is not None:
            source = f"--token-file {str(token_file)!r}"
            token = _read_token_file(token_file, "--token-file")
        elif TOKEN_ENV in env:
            source = f"${TOKEN_ENV}"
            token = env[TOKEN_ENV].strip()
            if not token:
                raise ServiceError(
                    f"${TOKEN_ENV} is set but empty: set it to the token or unset it"
                )
            if len(token) > settings_mod.MAX_CREDENTIAL_CHARS or not token.isprintable():
                raise ServiceError(f"${TOKEN_ENV} is not a token (too long or not printable)")
        elif TOKEN_FILE_ENV in env:
            path = Path(env[TOKEN_FILE_ENV])
            source = f"${TOKEN_FILE_ENV} ({str(path)!r})"
            if not env[TOKEN_FILE_ENV].strip():
                raise ServiceError(f"${TOKEN_FILE_ENV} is set but empty: name the token's file")
            token = _read_token_file(path, f"${TOKEN_FILE_ENV}")
        return cls(url, token, token_source=source)

    def get(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        """GET ``path`` (such as ``/api/v1/status``): the parsed JSON answer."""
        return self._json("GET", path, self._request("GET", path, params=params))

    def get_text(self, path: str, params: Mapping[str, str] | None = None) -> str:
        """GET ``path``: the answer as text (``/metrics``, a rendered report)."""
        return self._request("GET", path, params=params).decode("utf-8", "replace")

    def post(self, path: str, body: Mapping[str, Any] | None = None) -> Any:
        """POST ``body`` as JSON (``{}`` when none) to ``path``: the parsed JSON answer."""
        content = orjson.dumps(dict(body or {}))
        return self._json("POST", path, self._request("POST", path, content=content))

    def _json(self, method: str, path: str, body: bytes) -> Any:
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            raise ServiceError(
                f"{method} {self.url}{path}: the answer is not JSON; is {self.url} "
                "conea-monitor? (pass --url or set CONEA_MONITOR_URL)"
            ) from None

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        content: bytes | None = None,
    ) -> bytes:
        if not path.startswith("/"):
            raise ValueError(f"path {path!r} must start with /")
        headers = {"accept": "application/json"}
        if content is not None:
            headers["content-type"] = "application/json"
        if self._token is not None:
            headers["authorization"] = f"Bearer {self._token}"
        try:
            with (
                httpx.Client(timeout=self._timeout, follow_redirects=False) as http,
                http.stream(
                    method,
                    self.url + path,
                    params=dict(params or {}),
                    content=content,
                    headers=headers,
                ) as response,
            ):
                body = self._bounded(response, method, path)
        except httpx.TransportError as exc:
            reason = str(exc) or type(exc).__name__
            raise ServiceError(
                f"no conea-monitor answers at {self.url}: {reason}; start it, pass --url "
                f"(or set {URL_ENV}), {DIRECT}"
            ) from None
        status = response.status_code
        if status in (401, 403):
            raise ServiceError(self._refused(status, body), status)
        if 300 <= status < 400:
            raise ServiceError(
                f"{method} {self.url}{path}: redirected ({status}) to "
                f"{response.headers.get('location', '?')[:200]!r}; pass that address as --url",
                status,
            )
        if status >= 400:
            raise ServiceError(
                f"{method} {path}: {status} {_problem(body)}"[:MAX_MESSAGE_CHARS], status
            )
        return body

    def _bounded(self, response: httpx.Response, method: str, path: str) -> bytes:
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_RESPONSE_BYTES:
            raise ServiceError(self._too_big(method, path))
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > MAX_RESPONSE_BYTES:
                raise ServiceError(self._too_big(method, path))
            chunks.append(chunk)
        return b"".join(chunks)

    def _too_big(self, method: str, path: str) -> str:
        return (
            f"{method} {self.url}{path}: the answer is over {MAX_RESPONSE_BYTES} bytes; "
            "ask for less (--limit, --since)"
        )

    def _refused(self, status: int, body: bytes) -> str:
        what = "refused" if status == 401 else "does not allow this with"
        why = _problem(body)
        if self._token is None:
            return (
                f"{self.url} wants a token ({status}: {why}); pass --token-file PATH or set "
                f"{TOKEN_ENV} or {TOKEN_FILE_ENV}"
            )[:MAX_MESSAGE_CHARS]
        return (
            f"{self.url} {what} the token from {self.token_source} ({status}: {why}); "
            f"pass the right one with --token-file PATH, {TOKEN_ENV} or {TOKEN_FILE_ENV}"
        )[:MAX_MESSAGE_CHARS]
