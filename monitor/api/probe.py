"""``GET /probe?target=...&module=...[&debug=true]``: blackbox-style probes.

The route is answered in front of FastAPI (:func:`in_front`, which ``create_app``
puts before the framework's middleware and routing): no request object, no routing,
no dependency solving, no response model. At thousands of probes per second that
work was a sixth of the CPU of a probe (see ``bench/probe.py``). ``router`` serves
the same endpoint from inside a FastAPI app, for apps built without the front.

Errors are plain text, as blackbox_exporter answers them: 400 with the reason for an
unknown module or a bad or disallowed target, 503 when the concurrency cap is
reached, 500 naming the exception for a bug (which is logged). The service comes
from ``app.state.probe_service``; the address the request arrived on (the scope's
``server``) is passed along, so that no probe can target the service itself.
"""

from __future__ import annotations

import logging
import urllib.parse

from fastapi import APIRouter
from starlette import routing
from starlette.types import ASGIApp, Receive, Scope, Send

from monitor.errors import ProbeError
from monitor.probes import guard, service

log = logging.getLogger(__name__)

CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"
TEXT = b"text/plain; charset=utf-8"
TRUE = ("true", "1", "yes")
TIMEOUT_HEADER = b"x-prometheus-scrape-timeout-seconds"


class ProbeEndpoint:
    """The ASGI app behind ``/probe``."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        probes: service.ProbeService = scope["app"].state.probe_service
        query = parse_query(scope["query_string"])
        scrape_timeout = None
        for name, value in scope["headers"]:
            if name == TIMEOUT_HEADER:
                scrape_timeout = value.decode("latin-1")
        debug = query.get("debug", "").lower() in TRUE
        server = scope.get("server")
        own = guard.Own(str(server[0]), int(server[1])) if server and server[1] else None
        try:
            result = await probes.probe(
                query.get("module"),
                query.get("target"),
                scrape_timeout=scrape_timeout,
                debug=debug,
                own=own,
            )
        except service.TooManyProbes as exc:
            await _respond(send, 503, TEXT, f"{exc}\n".encode(), [(b"retry-after", b"1")])
            return
        except ProbeError as exc:
            await _respond(send, 400, TEXT, f"{exc}\n".encode())
            return
        except Exception as exc:  # in front of FastAPI, its error handler is not there
            log.exception("unhandled error on /probe")
            body = f"internal error ({type(exc).__name__}); see the service log\n"
            await _respond(send, 500, TEXT, body.encode())
            return
        if debug:
            await _respond(send, 200, TEXT, _debug_page(probes, result).encode())
        else:
            await _respond(send, 200, CONTENT_TYPE, result.exposition())


def parse_query(raw: bytes) -> dict[str, str]:
    """``dict(urllib.parse.parse_qsl(raw.decode("latin-1")))``, without its per-field
    overhead: parts without a value are dropped, the last of a name wins, and only a
    part with ``%`` or ``+`` in it is unquoted."""
    query = {}
    for part in raw.decode("latin-1").split("&"):
        name, _, value = part.partition("=")
        if not value:
            continue
        if "%" in part or "+" in part:
            name = urllib.parse.unquote_plus(name, errors="replace")
            value = urllib.parse.unquote_plus(value, errors="replace")
        query[name] = value
    return query


async def _respond(
    send: Send,
    status: int,
    content_type: bytes,
    body: bytes,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode()),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _debug_page(probes: service.ProbeService, result: service.Result) -> str:
    return (
        "Logs for the probe:\n"
        + "\n".join(result.trace.lines)
        + "\n\n\nMetrics that would have been returned:\n"
        + result.exposition().decode()
        + "\n\nModule configuration:\n"
        + probes.module_yaml(result.module)
    )


ENDPOINT = ProbeEndpoint()
PATH = "/probe"
METHODS = ("GET", "HEAD")


def in_front(app: ASGIApp) -> ASGIApp:
    """``app`` with ``GET /probe`` answered before it: the framework's middleware and
    routing never see a probe. Everything else, other methods on ``/probe`` included
    (405 from the router), goes to ``app``."""

    async def front(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == PATH and scope["method"] in METHODS:
            await ENDPOINT(scope, receive, send)
        else:
            await app(scope, receive, send)

    return front


router = APIRouter()
router.routes.append(routing.Route(PATH, ENDPOINT, methods=["GET"], include_in_schema=False))
