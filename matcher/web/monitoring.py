"""Request ids, structured JSON logs and Prometheus metrics.

* Every request gets an id: the client's ``X-Request-ID`` when it is a plain token of at most 64
  characters, else a new one. It is returned in the ``X-Request-ID`` header and in problem bodies,
  and every log line written while the request runs carries it.
* :class:`JsonFormatter` writes one JSON object per line (``time, level, logger, message,
  request_id`` and any ``extra`` fields). Messages and tracebacks are redacted with
  :func:`matcher.text.privacy.redact` and cut at a bounded length, so a log never holds a need text in
  full; the package itself logs need ids and lengths only.
* One access line per request (logger ``matcher.access``): method, route template, status,
  duration, role and key id; the query string's names are logged, never its values.
* ``GET /metrics`` (Prometheus text format): requests by route, method and status, latency
  histograms per route, the time spent matching, the model version each process serves. Under
  gunicorn, ``PROMETHEUS_MULTIPROC_DIR`` is set by :mod:`matcher.web.server` and every worker's samples
  are summed (prometheus_client's multiprocess mode).

prometheus_client is imported where it is used, not at the top: it picks its storage (one process, or
the multiprocess files) from ``PROMETHEUS_MULTIPROC_DIR`` when first imported, which must come after
:mod:`matcher.web.server` has set it.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from datetime import UTC, datetime
from functools import lru_cache
from types import SimpleNamespace
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, has_request_context, request
from flask.typing import ResponseReturnValue

from matcher.text.privacy import redact
from matcher.web.openapi import operation

__all__ = [
    "JsonFormatter",
    "bp",
    "configure_logging",
    "install",
    "metrics",
    "request_id",
    "route_label",
]

logger = logging.getLogger(__name__)
access_logger = logging.getLogger("matcher.access")

bp = Blueprint("monitoring", __name__)

MAX_MESSAGE = 2000
MAX_TRACEBACK = 8000
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")
_PARAM = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")
_STANDARD = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys() | {"message", "asctime", "taskName"}
)


# --------------------------------------------------------------------------- request ids


def request_id() -> str | None:
    """The id of the request being served, or None outside a request."""
    if not has_request_context():
        return None
    return g.get("request_id")


def _clean(text: str, limit: int) -> str:
    text = redact(text)
    return text if len(text) <= limit else text[:limit] + f"… ({len(text) - limit} characters cut)"


# --------------------------------------------------------------------------- logs


class JsonFormatter(logging.Formatter):
    """One JSON object per line; personal data redacted, long messages cut."""

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": _clean(record.getMessage(), MAX_MESSAGE),
        }
        rid = getattr(record, "request_id", None) or request_id()
        if rid:
            body["request_id"] = rid
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_") and key not in body:
                body[key] = value if isinstance(value, (int, float, bool)) or value is None else _clean(str(value), 500)
        if record.exc_info:
            body["exception"] = _clean(self.formatException(record.exc_info), MAX_TRACEBACK)
        return json.dumps(body, ensure_ascii=False)


class RequestIdFilter(logging.Filter):
    """Stamps each record with the id of the request being served (when there is one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id()
        return True


def configure_logging(level: int = logging.INFO) -> None:
    """Send every log record to stderr as JSON lines (replaces the root logger's handlers)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for chatty in ("jieba", "alembic"):
        logging.getLogger(chatty).setLevel(logging.WARNING)


# --------------------------------------------------------------------------- metrics


@lru_cache(maxsize=1)
def metrics() -> SimpleNamespace:
    """The metric objects, made on first use (after ``PROMETHEUS_MULTIPROC_DIR`` is set, under gunicorn).

    One set per process, shared by every app in it: prometheus_client registers each metric name
    once in its process-wide registry.
    """
    from prometheus_client import Counter, Gauge, Histogram

    latency = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
    return SimpleNamespace(
        requests=Counter(
            "matcher_http_requests",
            "HTTP requests by route template, method and status.",
            ["route", "method", "status"],
        ),
        latency=Histogram(
            "matcher_http_request_duration_seconds",
            "Time from the request reaching the app to its response, by route template and method.",
            ["route", "method"],
            buckets=latency,
        ),
        match=Histogram(
            "matcher_match_duration_seconds", "Time spent matching one need (model and reasons).", buckets=latency
        ),
        model=Gauge(
            "matcher_model_active",
            "1 for the model version a live server process serves.",
            ["version"],
            multiprocess_mode="livemax",
        ),
        denied=Counter(
            "matcher_auth_denied", "Requests refused: 401 (no valid key) and 403 (role may not).", ["status"]
        ),
    )


class ServedModel:
    """The model version an app last reported to the ``matcher_model_active`` gauge (``app.extensions["served_model"]``)."""

    def __init__(self) -> None:
        self.version: str | None = None

    def report(self, version: str | None) -> None:
        """Set the gauge to 1 for ``version`` and back to 0 for the version reported before it."""
        if version == self.version:
            return
        gauge = metrics().model
        if self.version:
            gauge.labels(self.version).set(0)
        if version:
            gauge.labels(version).set(1)
        self.version = version


def _report_model(app: Flask) -> None:
    app.extensions["served_model"].report(app.extensions["matcher"].status().get("model_version"))


@bp.get("/metrics")
@operation(
    "metrics",
    "Prometheus metrics",
    responses={200: ("text/plain", {"type": "string"})},
    description="Prometheus text format; under gunicorn every worker's samples are summed.",
    tag="service",
)
def prometheus() -> ResponseReturnValue:
    """Prometheus metrics (every worker's samples under gunicorn)."""
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

    _report_model(current_app)
    if current_app.config.get("METRICS_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST.split(";")[0])


# --------------------------------------------------------------------------- per request


def route_label() -> str:
    """The route template of the request (``/v1/experts/{record_id}``), or ``unmatched``: bounded cardinality."""
    rule = request.url_rule
    if rule is None:
        return "unmatched"
    args = request.view_args or {}

    def name(match: re.Match) -> str:
        if match.group(1) == "kind" and isinstance(args.get("kind"), str):
            return args["kind"]
        return "{" + match.group(1) + "}"

    return _PARAM.sub(name, rule.rule)


def _begin() -> None:
    given = request.headers.get("X-Request-ID", "")
    g.request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
    g.started = time.perf_counter()


def _finish(response: Response) -> Response:
    response.headers["X-Request-ID"] = g.get("request_id", "")
    elapsed = time.perf_counter() - g.get("started", time.perf_counter())
    route = route_label()
    status = response.status_code
    registry = metrics()
    registry.requests.labels(route, request.method, str(status)).inc()
    registry.latency.labels(route, request.method).observe(elapsed)
    if status in (401, 403):
        registry.denied.labels(str(status)).inc()
    _report_model(current_app)
    identity = g.get("identity")
    access_logger.info(
        "%s %s %d",
        request.method,
        route,
        status,
        extra={
            "request_id": g.get("request_id"),
            "method": request.method,
            "route": route,
            "status": status,
            "duration_ms": round(elapsed * 1000, 3),
            "role": identity.role if identity else None,
            "key_id": identity.key_id if identity else None,
            "query": ",".join(sorted(request.args.keys())) or None,
        },
    )
    return response


def observe_match(seconds: float) -> None:
    """Record the time one match took."""
    metrics().match.observe(seconds)


def install(app: Flask) -> None:
    """Request ids, the access log and request metrics for every request of ``app``; ``/metrics``."""
    app.extensions["served_model"] = ServedModel()
    app.before_request(_begin)
    app.after_request(_finish)
    app.register_blueprint(bp)
