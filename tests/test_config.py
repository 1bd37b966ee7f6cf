"""The settings come from the environment in one place; the app owns what it serves with."""

from __future__ import annotations

from pathlib import Path

import pytest

from matcher.config import DEFAULT_SQLITE, Settings
from matcher.inputs.library import data_dir
from matcher.jobs.executors import EngineError, make_engine
from matcher.matching import persist
from matcher.store.db import MAX_ENGINES, database_url, dispose_engines, engine_for
from matcher.web import close_app, create_app


def test_defaults_without_any_variable() -> None:
    settings = Settings.from_env({})
    assert settings == Settings()
    assert settings.models_dir == Path("models") and settings.data_dir == Path("data")
    assert settings.database_url == f"sqlite:///{DEFAULT_SQLITE}"
    assert (settings.api_keys, settings.signing_key, settings.dask_scheduler, settings.metrics_dir) == (None,) * 4
    assert (settings.segmenter, settings.worker_threads, dict(settings.web)) == ("", 1, {})


def test_every_variable_is_read() -> None:
    settings = Settings.from_env(
        {
            "MATCHER_MODELS_DIR": "/srv/models",
            "MATCHER_DATA_DIR": "/srv/data",
            "DATABASE_URL": "postgres://u@db:5432/matcher",
            "MATCHER_API_KEYS": "a:admin:" + "0" * 64,
            "MATCHER_SIGNING_KEY": "secret",
            "MATCHER_SEGMENTER": " Jieba ",
            "DASK_SCHEDULER_ADDRESS": "tcp://10.0.0.5:8786",
            "MATCHER_WORKER_THREADS": "2",
            "PROMETHEUS_MULTIPROC_DIR": "/tmp/metrics",
            "MATCHER_SESSION_COOKIE_SECURE": "true",
            "MATCHER_AUTH_CACHE_SECONDS": "0",
            "MATCHER_SESSION_NAME": "plain text",
            "MATCHER_OUTER__INNER": "1",
            "OTHER": "ignored",
        }
    )
    assert settings.models_dir == Path("/srv/models") and settings.data_dir == Path("/srv/data")
    assert settings.database_url == "postgresql+psycopg://u@db:5432/matcher"
    assert settings.api_keys == "a:admin:" + "0" * 64 and settings.signing_key == "secret"
    assert settings.segmenter == "jieba" and settings.dask_scheduler == "tcp://10.0.0.5:8786"
    assert settings.worker_threads == 2 and settings.metrics_dir == Path("/tmp/metrics")
    # the other MATCHER_* variables are the web app's options, JSON-parsed as Flask's from_prefixed_env does
    assert settings.web == {
        "SESSION_COOKIE_SECURE": True,
        "AUTH_CACHE_SECONDS": 0,
        "SESSION_NAME": "plain text",
        "OUTER": {"INNER": 1},
    }


def test_empty_variables_count_as_unset() -> None:
    settings = Settings.from_env({"MATCHER_MODELS_DIR": "", "MATCHER_DATA_DIR": "", "DATABASE_URL": ""})
    assert (settings.models_dir, settings.data_dir) == (Path("models"), Path("data"))
    assert settings.database_url == f"sqlite:///{DEFAULT_SQLITE}"


def test_library_defaults_follow_the_environment_when_called(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("MATCHER_MODELS_DIR", str(tmp_path / "m"))
    monkeypatch.setenv("MATCHER_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@db/x")
    monkeypatch.setenv("MATCHER_SIGNING_KEY", "k")
    assert persist.models_dir() == tmp_path / "m" and data_dir() == tmp_path / "d"
    assert database_url() == "postgresql+psycopg://u@db/x" and persist.signing_key() == "k"
    assert persist.signing_key("given") == "given"


def test_create_app_layers_defaults_environment_then_config(tmp_path) -> None:
    env = {
        "MATCHER_MODELS_DIR": str(tmp_path / "models"),
        "MATCHER_DATA_DIR": str(tmp_path / "data"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'env.sqlite3'}",
        "MATCHER_SESSION_COOKIE_SECURE": "true",
        "MATCHER_SESSION_HOURS": "2",
    }
    app = create_app({"SESSION_HOURS": 1.5}, settings=Settings.from_env(env))
    try:
        assert app.config["MODELS_DIR"] == str(tmp_path / "models") and app.config["DATA_DIR"] == str(tmp_path / "data")
        assert app.config["SESSION_COOKIE_SECURE"] is True  # the environment over the defaults
        assert app.config["SESSION_HOURS"] == 1.5  # the given config over the environment
        assert app.config["MAX_CONTENT_LENGTH"] == 64 * 1024  # a default nobody changed
        service = app.extensions["matcher"]
        assert service.models_dir == tmp_path / "models" and service.database_url == env["DATABASE_URL"]
    finally:
        close_app(app)


def test_each_app_reports_its_own_served_model(tmp_path) -> None:
    first, second = (create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite3'}"}) for _ in range(2))
    assert first.extensions["served_model"] is not second.extensions["served_model"]
    assert first.extensions["served_model"].version is None
    first.extensions["served_model"].report("20990101T000000Z")
    assert second.extensions["served_model"].version is None
    first.extensions["served_model"].report(None)


def test_engines_are_disposed_when_closed_or_evicted(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'a.sqlite3'}"
    engine = engine_for(url)
    assert engine_for(url) is engine
    with engine.connect() as connection:
        connection.exec_driver_sql("SELECT 1")
    pool = engine.pool
    app = create_app({"DATABASE_URL": url})
    close_app(app)  # the app's teardown disposes its engine
    assert engine.pool is not pool and engine_for(url) is not engine

    first = engine_for(url)
    pool = first.pool
    for number in range(MAX_ENGINES):  # more engines than are kept: the least recently used is disposed
        engine_for(f"sqlite:///{tmp_path / f'{number}.sqlite3'}")
    assert first.pool is not pool and engine_for(url) is not first
    dispose_engines()


def test_dask_engine_takes_the_scheduler_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    with pytest.raises(EngineError, match="needs --scheduler"):
        make_engine("dask")
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", "tcp://10.0.0.5:8786")
    assert make_engine("dask").scheduler == "tcp://10.0.0.5:8786"
    assert make_engine("dask", scheduler="tcp://other:8786").scheduler == "tcp://other:8786"


@pytest.mark.parametrize("value", ["two", "0", "-1", "1.5"])
def test_a_bad_worker_thread_count_is_named(value: str) -> None:
    with pytest.raises(ValueError, match=r"MATCHER_WORKER_THREADS must be a whole number of 1 or more, got"):
        Settings.from_env({"MATCHER_WORKER_THREADS": value})
