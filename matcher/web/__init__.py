"""The Flask application: ``create_app(config=None)`` wires the blueprints, the model, access and the errors."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask

from matcher.config import Settings
from matcher.service.match import MatchService
from matcher.web import (
    access,
    admin,
    api,
    bureau,
    events,
    export,
    monitoring,
    openapi,
    orgfile,
    overview,
    payload,
    records,
    ui,
)
from matcher.web.errors import register_error_handlers

__all__ = ["create_app"]


def create_app(config: dict[str, Any] | None = None, settings: Settings | None = None) -> Flask:
    """Build the application.

    Configuration is layered here and only here: the defaults, then the environment's settings
    (``settings``, default :meth:`matcher.config.Settings.from_env`: ``MATCHER_MODELS_DIR``,
    ``MATCHER_DATA_DIR``, ``DATABASE_URL``, ``MATCHER_API_KEYS``, ``MATCHER_SIGNING_KEY`` and the
    other ``MATCHER_*`` options such as ``MATCHER_SESSION_COOKIE_SECURE``), then ``config``.
    See docs/operations.md for every setting.

    The app owns what it serves with: ``app.extensions["matcher"]`` (the
    :class:`~matcher.service.match.MatchService`, with its database engine) and the key ring;
    :func:`close_app` releases them.
    """
    settings = settings or Settings.from_env()
    app = Flask(__name__)
    app.config.from_mapping(
        MODELS_DIR=str(settings.models_dir),
        DATA_DIR=str(settings.data_dir),
        DATABASE_URL=settings.database_url,
        MAX_CONTENT_LENGTH=64 * 1024,
        MAX_FORM_MEMORY_SIZE=16 * 1024,
        MAX_FORM_PARTS=100,
        JSON_AS_ASCII=False,
        API_KEYS=settings.api_keys,
        SIGNING_KEY=settings.signing_key,
        AUTH_CACHE_SECONDS=2.0,
        SESSION_HOURS=8.0,
        SESSION_COOKIE_SECURE=False,
        EVENTS_PLAN_SECONDS=5.0,
        VALIDATE_RESPONSES=False,
        METRICS_DIR=str(settings.metrics_dir) if settings.metrics_dir else None,
    )
    app.config.update(settings.web)
    if config:
        app.config.update(config)
    if app.config["TESTING"] and "VALIDATE_RESPONSES" not in (config or {}):
        app.config["VALIDATE_RESPONSES"] = True  # the tests hold every body to its documented model
    app.json.ensure_ascii = False
    app.json.sort_keys = False  # keep the documented field order: id, name, score, reasons
    if not app.debug and not logging.getLogger().handlers:
        monitoring.configure_logging(logging.INFO)

    signing_key = app.config.get("SIGNING_KEY")
    app.extensions["matcher"] = MatchService(
        app.config["MODELS_DIR"],
        app.config["DATA_DIR"],
        app.config["DATABASE_URL"],
        signing_key=str(signing_key) if signing_key else None,
    )

    monitoring.install(app)  # first: the request id and timer exist for every later hook
    payload.install(app)
    access.install(app)
    app.register_blueprint(api.bp)
    app.register_blueprint(records.bp)
    app.register_blueprint(events.bp)
    app.register_blueprint(orgfile.bp)
    app.register_blueprint(bureau.bp)
    app.register_blueprint(export.bp)
    app.register_blueprint(overview.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(openapi.bp)
    app.register_blueprint(ui.bp)
    register_error_handlers(app)
    return app


def close_app(app: Flask) -> None:
    """Release what ``app`` holds: its database engine's connections (a gunicorn worker's exit, a test's end)."""
    app.extensions["matcher"].close()
