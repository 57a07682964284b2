"""The HTTP app behind ``genre-lab serve`` (FastAPI; uvicorn runs it): a loaded model behind

    POST /v1/predict    movies (template columns) or raw texts -> genres, probabilities, cut flags, model identity
    GET  /v1/metadata   genres, template, decision rule, calibration, training figures, model hash
    GET  /health        the process answers;  GET /ready: the model is loaded and warmed up
    GET  /metrics       Prometheus text format;  GET /docs: OpenAPI docs

Requests share model calls through the micro-batcher (batcher.py). Every refusal is one JSON error naming the field
(schema.ErrorResponse) with its status: 400 unparsable JSON, 401 missing or wrong API key, 413 too many movies or
too large a body, 422 a body of the wrong shape. An unexpected failure is a 500 with a one-line JSON error; the
traceback goes to the server's log, never to the client.

The model comes in as a ``ServedModel`` (texts -> probabilities, decisions, cut flags), so this module needs neither
torch nor genre_lab's run classes: genre_lab/serve.py builds one from a run or from an exported ONNX folder.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib.metadata import version
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from genre_lab.data.text_template import build_text, template_fields
from genre_lab.serving.batcher import Compute, MicroBatcher
from genre_lab.serving.body_limit import BodyLimit
from genre_lab.serving.schema import ErrorResponse, PredictRequest, PredictResponse, error_payload
from genre_lab.serving.telemetry import Observed, Telemetry

log = logging.getLogger(__name__)
ERRORS = {code: {"model": ErrorResponse} for code in (400, 401, 413, 422, 500)}


@dataclass(frozen=True)
class ServedModel:
    """What the app needs of a model: its genres and template, ``compute`` (texts -> probabilities, decisions
    and cut flags, blocking), who it is (``identity``: sha256, kind, file) and what ``/v1/metadata`` shows."""

    genres: list[str]
    text_template: str
    compute: Compute
    identity: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ServeLimits:
    max_batch: int = 32  # texts per model call; 1 = no micro-batching
    max_wait_ms: float = 0.0  # how long the first request of a batch waits for others (0: what queued meanwhile)
    max_rows: int = 256  # movies or texts per request (413 above)
    max_body_bytes: int = 1_048_576  # request body (413 above)
    api_key: str | None = None  # when set, /v1/* and /metrics need "Authorization: Bearer <api_key>"


class RequestError(Exception):
    def __init__(self, status: int, field: str | None, message: str) -> None:
        super().__init__(message)
        self.status, self.field, self.message = status, field, message


def error(status: int, field: str | None, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_payload(status, field, message), status, headers=headers)


def field_name(loc: Sequence[Any]) -> str | None:
    """pydantic's ``("body", "movies", 0, "synopsis")`` as ``movies[0].synopsis``."""
    name = ""
    for part in loc[1:] if loc and loc[0] == "body" else loc:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or None


def texts_of(body: PredictRequest, template: str, columns: list[str], max_rows: int) -> list[str]:
    """The model texts of a valid request, or the RequestError that names the first bad field."""
    where, rows = ("movies", body.movies) if body.movies is not None else ("texts", body.texts)
    assert rows is not None  # PredictRequest.one_input
    if not rows:
        raise RequestError(422, where, f"{where} is empty: send at least one")
    if len(rows) > max_rows:
        raise RequestError(413, where, f"{len(rows)} {where} in one request, the server takes at most {max_rows} "
                                       "(max_rows); split the request")
    if body.texts is not None:
        for i, text in enumerate(body.texts):
            refuse_bad_text(text, f"texts[{i}]")
        return list(body.texts)
    texts = []
    for i, movie in enumerate(body.movies or []):
        missing = [c for c in columns if c not in movie]
        if missing:
            raise RequestError(422, f"movies[{i}].{missing[0]}", f"movie {i} lacks {missing}: the model's template "
                                                                 f"{template!r} uses {columns} (null or \"\" for none)")
        for column in columns:
            refuse_bad_text(movie[column] or "", f"movies[{i}].{column}")
        text = build_text(movie, template)
        if not (movie[columns[0]] or "").strip():
            raise RequestError(422, f"movies[{i}].{columns[0]}", f"movie {i} has an empty {columns[0]}: nothing to "
                                                                 "predict from")
        texts.append(text)
    return texts


def refuse_bad_text(text: str, where: str) -> None:
    if "\x00" in text:
        raise RequestError(422, where, f"{where} contains a NUL character (\\u0000); remove it")


class Endpoints:
    """The routes' bodies, over one model, its limits, its batcher and its metrics (create_app wires them)."""

    def __init__(self, model: ServedModel, limits: ServeLimits) -> None:
        self.model, self.limits, self.ready_now = model, limits, False
        self.columns = template_fields(model.text_template)
        self.telemetry = Telemetry()
        self.batcher = MicroBatcher(model.compute, limits.max_batch, limits.max_wait_ms, self.telemetry.observe_batch)

    @asynccontextmanager
    async def lifespan(self, app: FastAPI):  # noqa: ANN201 - FastAPI's lifespan protocol
        self.batcher.start()
        await self.batcher.submit(["warm-up"])  # the first model call pays one-off costs before readiness is reported
        self.ready_now = True
        log.info("model %s ready", self.model.identity.get("sha256", "")[:12])
        yield
        self.ready_now = False  # uvicorn has finished the requests in flight by now
        await self.batcher.stop()

    async def predict(self, body: PredictRequest) -> dict[str, Any]:
        """Genres of movies (objects with the template columns) or raw texts, in input order."""
        texts = texts_of(body, self.model.text_template, self.columns, self.limits.max_rows)
        probs, decisions, cut = await self.batcher.submit(texts)
        genres = self.model.genres
        return {"model": self.model.identity, "predictions": [
            {"genres": [g for g, chosen in zip(genres, row, strict=True) if chosen],
             "probabilities": dict(zip(genres, map(float, p), strict=True)), "cut": bool(c)}
            for p, row, c in zip(probs, decisions, cut, strict=True)]}

    async def metadata(self) -> dict[str, Any]:
        """The genres, the text template and its columns, the decision rule, the calibration, the training
        figures and the model's identity."""
        return {"model": self.model.identity, "genres": self.model.genres, "text_template": self.model.text_template,
                "text_columns": self.columns, **self.model.metadata,
                "server": {k: v for k, v in vars(self.limits).items() if k != "api_key"}}

    async def health(self) -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    async def ready(self) -> Any:
        """Readiness: the model is loaded and has answered its warm-up call."""
        if not self.ready_now:
            return error(503, None, "the model is not ready (loading, or the server is shutting down)")
        return {"ready": True, "model": self.model.identity}

    async def metrics(self) -> Response:
        """Prometheus metrics: requests, errors, latency, in-flight requests, micro-batch sizes."""
        return Response(self.telemetry.exposition(), media_type=self.telemetry.content_type)


def create_app(model: ServedModel, limits: ServeLimits = ServeLimits()) -> FastAPI:
    """The app for ``model``; ``uvicorn.run(create_app(...))`` serves it."""
    api = Endpoints(model, limits)
    app = FastAPI(title="genre_lab", summary="movie genres from synopsis and title", lifespan=api.lifespan,
                  version=version("genre_lab"))
    app.add_middleware(BodyLimit, max_bytes=limits.max_body_bytes)
    app.add_middleware(Observed, telemetry=api.telemetry)  # outermost: counts the body limit's 413s too
    add_error_handlers(app)
    authorized = [Depends(api_key_check(limits.api_key))]
    app.add_api_route("/v1/predict", api.predict, methods=["POST"], response_model=PredictResponse,
                      responses=ERRORS, dependencies=authorized)
    app.add_api_route("/v1/metadata", api.metadata, methods=["GET"], responses=ERRORS, dependencies=authorized)
    app.add_api_route("/health", api.health, methods=["GET"])
    app.add_api_route("/ready", api.ready, methods=["GET"], responses={503: {"model": ErrorResponse}})
    app.add_api_route("/metrics", api.metrics, methods=["GET"], dependencies=authorized)
    api.telemetry.routes.update(route.path for route in app.routes)  # /docs and /openapi.json included
    return app


def api_key_check(api_key: str | None) -> Any:
    """A dependency: ``Authorization: Bearer <api_key>``, compared in constant time; nothing when no key is set."""
    expected = api_key.encode() if api_key else None

    async def check(request: Request) -> None:
        if expected is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
            raise RequestError(401, "Authorization", "missing or wrong API key: send the header "
                                                     "'Authorization: Bearer <key>'")
    return check


def add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestError)
    async def refused(_: Request, err: RequestError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if err.status == 401 else None
        return error(err.status, err.field, err.message, headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, err: RequestValidationError) -> JSONResponse:
        first = err.errors()[0]
        if first.get("type") == "json_invalid":
            return error(400, None, f"the body is not valid JSON: {first.get('ctx', {}).get('error', first['msg'])}")
        where = field_name(first.get("loc", ()))
        if where is None and first.get("type") in ("model_attributes_type", "dict_type", "missing"):
            return error(422, None, 'the body must be a JSON object, {"movies": [{…template columns…}, …]} or '
                                    '{"texts": ["…", …]}, sent with Content-Type: application/json')
        message = str(first["msg"]).removeprefix("Value error, ")
        more = f" (and {len(err.errors()) - 1} more problem(s))" if len(err.errors()) > 1 else ""
        return error(422, where, f"{where or 'body'}: {message}{more}")

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, err: HTTPException) -> JSONResponse:
        return error(err.status_code, None, str(err.detail), getattr(err, "headers", None))

    @app.exception_handler(Exception)
    async def crashed(request: Request, err: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        return error(500, None, f"internal error ({type(err).__name__}); the server's log has the details")
