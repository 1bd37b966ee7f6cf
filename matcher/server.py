"""Run the WSGI application under gunicorn (``matcher serve``)."""

from __future__ import annotations

from typing import Any

from gunicorn.app.base import BaseApplication

__all__ = ["run"]


class _Server(BaseApplication):
    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        from matcher.web import create_app

        return create_app()


def run(*, host: str = "127.0.0.1", port: int = 8000, workers: int = 2) -> None:
    """Serve ``create_app()`` on ``host:port`` with ``workers`` gunicorn workers until stopped."""
    _Server({"bind": f"{host}:{port}", "workers": workers, "accesslog": "-", "timeout": 60}).run()
