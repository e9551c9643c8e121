"""The FastAPI application of `ferkit serve`: the REST API under /v1, /healthz, the docs and the web page.

    engine = Engine(EngineConfig(workers=2))
    app = create_app(engine, ServeSettings(max_upload_bytes=10_000_000))

Every mistake in a request is answered with a 4xx status and JSON `{"error": "one clear line"}`.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..errors import FerkitError
from ..models.wrappers import backend_of
from .engine import DETECTORS, Busy, Engine, ImageTooLarge
from .uploads import MAX_PARTS, UploadError, is_multipart, parse_multipart, read_body

STATIC = Path(__file__).resolve().parent / "static"
IMAGE_FIELDS = ("image", "file")


@dataclass(frozen=True)
class ServeSettings:
    """Limits and access rules of the HTTP side (the engine has the model and the pixel limit)."""

    max_upload_bytes: int = 10_000_000  # a request body larger than this gets 413
    timeout: float = 30.0               # seconds to receive a body, and seconds to wait for its answer
    api_key: str | None = None          # if set, /v1/* needs `X-API-Key: KEY` or `Authorization: Bearer KEY`
    cors_origins: tuple[str, ...] = ()  # browser origins allowed to call the API from other pages


def _error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _validation_message(exc: RequestValidationError) -> str:
    lines = []
    for err in exc.errors():
        where = " ".join(str(p) for p in err.get("loc", ()) if p not in ("query", "body"))
        kind = {"query": "query parameter", "header": "header"}.get(str((err.get("loc") or ("",))[0]), "")
        lines.append(f"{kind} {where}: {err.get('msg', 'invalid')}".strip())
    return "; ".join(lines) or "invalid request"


_IMAGE_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {"schema": {"type": "object", "required": ["image"],
                                           "properties": {"image": {"type": "string", "format": "binary"}}}},
        "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
        "image/png": {"schema": {"type": "string", "format": "binary"}},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
    },
}
_BATCH_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {"schema": {"type": "object", "required": ["images"], "properties": {
            "images": {"type": "array", "items": {"type": "string", "format": "binary"}}}}},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
    },
}


def create_app(engine: Engine, settings: ServeSettings | None = None, close_engine: bool = False) -> FastAPI:
    """The ASGI app answering with `engine`; `close_engine` stops its workers when the app shuts down."""
    settings = settings or ServeSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        if close_engine:  # here, not after uvicorn returns: on SIGTERM uvicorn re-raises it once shut down
            engine.close()

    app = FastAPI(title="ferkit", version=__version__, lifespan=lifespan,
                  description="Facial expression recognition: find every face in a photo and say its "
                  "expression. "
                  "Upload an image as multipart/form-data (field `image`) or as the raw request body. "
                  "Errors are JSON `{\"error\": \"...\"}` with a 4xx status.")
    app.state.engine = engine
    app.state.settings = settings
    _add_headers(app, settings)
    _add_error_handlers(app, settings)
    _add_api(app, engine, settings)
    _add_page(app)
    return app


def _add_headers(app: FastAPI, settings: ServeSettings) -> None:
    """CORS for the configured origins, and security headers on every response."""
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins),
                           allow_methods=["GET", "POST"],
                           allow_headers=["Content-Type", "X-API-Key", "Authorization"])

    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        return response


def _add_error_handlers(app: FastAPI, settings: ServeSettings) -> None:
    """Errors are always JSON `{"error": ...}`, and never a 500 for a request's own mistake."""

    @app.exception_handler(UploadError)
    async def _upload_error(request: Request, exc: UploadError):
        return _error(exc.status, str(exc))

    @app.exception_handler(FerkitError)
    async def _ferkit_error(request: Request, exc: FerkitError):
        return _error(413 if isinstance(exc, ImageTooLarge) else 400, str(exc))

    @app.exception_handler(Busy)
    async def _busy(request: Request, exc: Busy):
        return _error(503, f"server busy: {exc}", headers={"Retry-After": "1"})

    @app.exception_handler(asyncio.TimeoutError)
    async def _timeout(request: Request, exc: asyncio.TimeoutError):
        return _error(504, f"no answer within {settings.timeout:g} s; try a smaller image")

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        return _error(422, _validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        return _error(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception):  # a bug, not the request's fault: still JSON
        return _error(500, f"internal error ({type(exc).__name__}); see the server's log")


def _key_check(settings: ServeSettings):
    """The dependency that refuses a request without the API key (a no-op when the server has none)."""

    def require_key(request: Request) -> None:
        if settings.api_key is None:
            return
        given = request.headers.get("x-api-key") or ""
        auth = request.headers.get("authorization") or ""
        if not given and auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        if not hmac.compare_digest(given.encode(), settings.api_key.encode()):
            raise StarletteHTTPException(401, "missing or wrong API key: send the header X-API-Key: KEY",
                                         headers={"WWW-Authenticate": "Bearer"})

    return require_key


async def _images_of(request: Request, settings: ServeSettings) -> list[tuple[str, bytes, str]]:
    """(file name or "", bytes, form field) of every image in the body."""
    body = await read_body(request, settings.max_upload_bytes, settings.timeout)
    content_type = request.headers.get("content-type", "")
    if is_multipart(content_type):
        parts = [p for p in parse_multipart(body, content_type) if p.filename is not None or p.data]
        if not parts:
            raise UploadError(400, "the form holds no file: send the image in the field 'image'")
        return [(p.filename or "", p.data, p.name) for p in parts]
    if not body:
        raise UploadError(400, "empty upload: send an image as multipart/form-data (field 'image') "
                          "or as the raw request body")
    return [("", body, "")]


def _with_top_k(probs: dict[str, float], k: int) -> list[dict]:
    ranked = sorted(probs.items(), key=lambda kv: -kv[1])[:k]
    return [{"label": label, "prob": p} for label, p in ranked]


def _add_api(app: FastAPI, engine: Engine, settings: ServeSettings) -> None:
    """The REST API under /v1, and /healthz."""
    guarded = [Depends(_key_check(settings))]

    @app.post("/v1/detect", dependencies=guarded, openapi_extra={"requestBody": _IMAGE_BODY},
              summary="Find every face in an image and classify its expression")
    async def detect(request: Request,
                     detector: Literal["mtcnn", "haar", "yunet"] | None = Query(
                         None, description="face detector (default: the server's)"),
                     min_face_size: int | None = Query(None, ge=8, le=4096,
                                                       description="smallest face to look "
                                                       "for, in pixels"),
                     top_k: int = Query(3, ge=1, le=100, description="how many classes to list per face in "
                                        "`top_k`")):
        start = time.perf_counter()
        items = await _images_of(request, settings)
        name, data, _ = next((item for item in items if item[2] in IMAGE_FIELDS), items[0])
        received = time.perf_counter()
        out = await engine.run("detect", data, name, detector, min_face_size, timeout=settings.timeout)
        for face in out["faces"]:
            face["top_k"] = _with_top_k(face["probs"], top_k)
        out = {"model": engine.model.name, "detector": detector or engine.config.detector, **out}
        out["timing_ms"].update(receive=round((received - start) * 1000, 2),
                                total=round((time.perf_counter() - start) * 1000, 2))
        return out

    @app.post("/v1/classify", dependencies=guarded, openapi_extra={"requestBody": _BATCH_BODY},
              summary="Classify the expression of already-cropped faces, in a batch")
    async def classify(request: Request, top_k: int = Query(3, ge=1, le=100)):
        start = time.perf_counter()
        items = await _images_of(request, settings)
        if len(items) > MAX_PARTS:
            raise UploadError(400, f"too many images in one batch (limit {MAX_PARTS})")
        out = await engine.run("classify", [(name, data) for name, data, _ in items],
                               timeout=settings.timeout)
        for p in out["predictions"]:
            p["top_k"] = _with_top_k(p["probs"], top_k)
        out = {"model": engine.model.name, "class_names": engine.class_names, **out}
        out["timing_ms"]["total"] = round((time.perf_counter() - start) * 1000, 2)
        return out

    @app.get("/v1/models", dependencies=guarded, summary="The model this server runs, and its detectors")
    async def models():
        return _models_answer(engine, settings)

    @app.get("/healthz", summary="Liveness: the model is loaded and the workers are up")
    async def healthz():
        return {"status": "ok", "version": __version__, "model": engine.model.name,
                "workers": engine.config.workers, "pool": engine.config.pool, "pending": engine.pending,
                "api_key_required": settings.api_key is not None}


def _models_answer(engine: Engine, settings: ServeSettings) -> dict:
    info = engine.classifier.info
    return {"models": [{"name": engine.model.name, "kind": engine.model.kind,
                        "architecture": info.model_name, "class_names": engine.class_names,
                        "input_size": info.in_size,
                        "backend": type(backend_of(engine.classifier)).__name__,
                        "temperature": info.temperature, "tta": engine.config.tta or "none"}],
            "detectors": list(DETECTORS), "default_detector": engine.config.detector,
            "limits": {"max_upload_bytes": settings.max_upload_bytes,
                       "max_pixels": engine.config.max_pixels,
                       "max_batch": MAX_PARTS, "timeout_s": settings.timeout}}


def _add_page(app: FastAPI) -> None:
    """The web page at / and its static files."""

    @app.get("/", include_in_schema=False)
    async def index():
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
