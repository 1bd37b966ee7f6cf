"""The Flask application: ``create_app(config=None)`` wires the blueprints, the model and the errors."""

from __future__ import annotations

import logging
import os
from typing import Any

from flask import Flask

from matcher.service import MatchService
from matcher.web.errors import register_error_handlers

__all__ = ["create_app"]


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the application.

    Configuration is layered: defaults (``DATABASE_URL`` from the environment, else the embedded
    SQLite file), then ``MATCHER_*`` environment variables (``MATCHER_MODELS_DIR``, ``MATCHER_DATA_DIR``),
    then ``config``.
    """
    app = Flask(__name__)
    app.config.from_mapping(
        MODELS_DIR=os.environ.get("MATCHER_MODELS_DIR") or "models",
        DATA_DIR=os.environ.get("MATCHER_DATA_DIR") or "data",
        DATABASE_URL=None,
        MAX_CONTENT_LENGTH=64 * 1024,
        JSON_AS_ASCII=False,
    )
    app.config.from_prefixed_env("MATCHER")
    if config:
        app.config.update(config)
    app.json.ensure_ascii = False
    app.json.sort_keys = False  # keep the documented field order: id, name, score, reasons
    if not app.debug and not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    app.extensions["matcher"] = MatchService(
        app.config["MODELS_DIR"], app.config["DATA_DIR"], app.config["DATABASE_URL"]
    )

    from matcher.web import api, records, ui

    app.register_blueprint(api.bp)
    app.register_blueprint(records.bp)
    app.register_blueprint(ui.bp)
    register_error_handlers(app)
    return app
