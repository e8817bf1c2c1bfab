"""The FastAPI application: the service contract plus inference, streaming and faults."""

import asyncio
import json
import socket

from fastapi import FastAPI, HTTPException, Query, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field

from . import __version__
from .inference import Faults, score
from .metrics import Metrics, MetricsMiddleware
from .readiness import check_all
from .settings import Settings

MAX_TEXT = 10_000
# Request headers the WebSocket hello echoes, so a test can see what the proxy forwarded.
_WS_ECHOED_HEADERS = ("host", "upgrade", "connection", "x-forwarded-for", "x-forwarded-proto", "x-request-id")


class InferRequest(BaseModel):
    text: str = Field(max_length=MAX_TEXT)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the application; settings come from the environment unless given."""
    settings = settings or Settings.from_env()
    metrics = Metrics(__version__)
    faults = Faults(settings.fault_error_ratio, settings.fault_latency_ms, settings.fault_seed)
    app = FastAPI(title="aistack example app", version=__version__)
    app.add_middleware(MetricsMiddleware, metrics=metrics)

    @app.get("/health")
    async def health() -> dict:
        """Liveness: the process serves requests."""
        return {"status": "ok"}

    @app.get("/ready")
    async def ready() -> JSONResponse:
        """Readiness: every configured dependency answers (none configured: ready)."""
        checks = await check_all(settings)
        is_ready = all(check["ok"] for check in checks.values())
        body = {"status": "ready" if is_ready else "not ready", "checks": checks}
        return JSONResponse(body, status_code=200 if is_ready else 503)

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        content, media_type = metrics.exposition()
        return Response(content, media_type=media_type)

    @app.get("/version")
    async def version() -> dict:
        return {"version": __version__, "hostname": socket.gethostname(), "release": settings.release}

    async def infer(text: str) -> dict:
        if await faults.strike():
            raise HTTPException(status_code=500, detail="injected fault (APP_FAULT_ERROR_RATIO)")
        value = score(text)
        return {"score": value, "label": "positive" if value >= 0.5 else "negative", "version": __version__}

    @app.get("/v1/infer")
    async def infer_get(text: str = Query(max_length=MAX_TEXT)) -> dict:
        return await infer(text)

    @app.post("/v1/infer")
    async def infer_post(request: InferRequest) -> dict:
        return await infer(request.text)

    @app.get("/v1/stream")
    async def stream(seconds: float = Query(10.0, ge=0), interval: float = Query(1.0, ge=0.01, le=60)):
        """Server-sent events: one `tick` per interval for `seconds`, then `done`."""
        if seconds > settings.stream_max_seconds:
            limit = f"{settings.stream_max_seconds:g}"
            raise HTTPException(422, f"seconds must be at most {limit} (APP_STREAM_MAX_SECONDS)")
        count = max(1, round(seconds / interval))

        async def events():
            for seq in range(1, count + 1):
                yield f"id: {seq}\nevent: tick\ndata: {json.dumps({'seq': seq, 'of': count})}\n\n"
                await asyncio.sleep(interval)
            yield f"event: done\ndata: {json.dumps({'events': count, 'version': __version__})}\n\n"

        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(events(), media_type="text/event-stream", headers=headers)

    @app.websocket("/v1/ws")
    async def echo(websocket: WebSocket) -> None:
        """WebSocket echo: first a hello with what the connection arrived with (host, the
        forwarded headers, the client address uvicorn trusted), then every text message back."""
        await websocket.accept()
        headers = websocket.headers
        await websocket.send_json(
            {
                "hello": socket.gethostname(),
                "version": __version__,
                "client": websocket.client.host if websocket.client else None,
                "scheme": websocket.url.scheme,
                "headers": {name: headers.get(name) for name in _WS_ECHOED_HEADERS},
            }
        )
        try:
            while True:
                await websocket.send_text(await websocket.receive_text())
        except WebSocketDisconnect:
            return

    metrics.initialise(app.routes)
    return app


app = create_app()
