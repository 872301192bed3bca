"""The baseline for bench/webhook.py: a FastAPI endpoint that only parses the payload."""

from __future__ import annotations

from fastapi import FastAPI, Request, Response

from monitor.alerts import payload

app = FastAPI()


@app.post("/webhook/alertmanager")
async def parse_only(request: Request) -> Response:
    notification = payload.parse(await request.body())
    return Response(f'{{"alerts":{len(notification.alerts)}}}', media_type="application/json")
