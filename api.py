"""WSGI entry point: ``gunicorn api:app``."""

from matcher.web import create_app

app = create_app()
