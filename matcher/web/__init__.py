"""The Flask application: ``create_app(config=None)`` wires the blueprints, the model and the errors."""

from __future__ import annotations

import logging
import os
from typing import Any

from flask import Flask

from matcher.web.errors import register_error_handlers
from matcher.web.state import MatchState

__all__ = ["create_app"]


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the application.

    Configuration is layered: defaults, then ``MATCHER_*`` environment variables (``MATCHER_MODELS_DIR``,
    ``MATCHER_DATA_DIR``), then ``config``.
    """
    app = Flask(__name__)
    app.config.from_mapping(
        MODELS_DIR=os.environ.get("MATCHER_MODELS_DIR") or "models",
        DATA_DIR=os.environ.get("MATCHER_DATA_DIR") or "data",
        MAX_CONTENT_LENGTH=64 * 1024,
        JSON_AS_ASCII=False,
    )
    app.config.from_prefixed_env("MATCHER")
    if config:
        app.config.update(config)
    app.json.ensure_ascii = False
    if not app.debug and not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    app.extensions["matcher"] = MatchState(app.config["MODELS_DIR"], app.config["DATA_DIR"])

    from matcher.web import api, ui

    app.register_blueprint(api.bp)
    app.register_blueprint(ui.bp)
    register_error_handlers(app)
    return app
