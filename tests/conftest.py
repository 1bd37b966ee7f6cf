"""Shared fixtures: a tiny Chinese library with known right answers, and a model trained on data/."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def target(
    target_type: str,
    id_: str,
    name: str,
    texts: list[str],
    tags: list[str],
    counties: list[str] | None = None,
    org_id: str | None = None,
    capacity: int | None = None,
    load: int = 0,
    available: bool = True,
) -> dict:
    """One row of a targets frame."""
    return {
        "target_type": target_type,
        "id": id_,
        "name": name,
        "texts": texts,
        "tags": tags,
        "counties": counties or [],
        "org_id": org_id,
        "capacity": capacity,
        "load": load,
        "available": available,
    }


@pytest.fixture
def toy_targets() -> pd.DataFrame:
    """Experts, resources and projects whose best match for each toy need is known."""
    return pd.DataFrame(
        [
            target(
                "expert",
                "E01",
                "周敏",
                ["专长：个案管理", "长期研究个案管理的流程与转介，带过多期个案会议督导。"],
                ["个案管理"],
                ["雄县", "容城县"],
                capacity=3,
            ),
            target(
                "expert",
                "E02",
                "李强",
                ["专长：小组工作", "擅长设计和带领小组工作，开展过小组工作实务工作坊。"],
                ["小组工作"],
                ["容城县"],
                capacity=2,
            ),
            target(
                "expert",
                "E03",
                "王芳",
                ["专长：养老服务", "关注居家养老与失能老人照护，熟悉为老服务项目。"],
                ["养老服务"],
                ["安新县"],
                capacity=2,
            ),
            target("expert", "E04", "赵磊", ["专长：战略规划", ""], ["战略规划"], ["雄县"], capacity=1),  # empty bio
            target(
                "expert",
                "E05",
                "陈静",
                ["专长：儿童保护", "儿童保护与预防校园欺凌，心语小屋项目督导。"],
                ["儿童保护"],
                ["容城县"],
                capacity=2,
            ),
            target(
                "resource",
                "R01",
                "个案管理技巧虚拟仿真实验系统",
                ["个案管理技巧虚拟仿真实验系统", "三维虚拟实验模拟个案会谈与转介"],
                ["个案管理"],
                ["容城县"],
            ),
            target(
                "resource", "R02", "孵化基地共享办公区", ["孵化基地共享办公区", "免费办公场地与会议室"], ["能力建设"]
            ),
            target(
                "project",
                "P01",
                "护苗行动",
                ["护苗行动", "未成年人关爱保护，预防校园欺凌，心语小屋"],
                ["儿童保护"],
                ["容城县"],
                org_id="O9",
            ),
            target(
                "project",
                "P02",
                "银龄相伴",
                ["银龄相伴", "回迁社区老人居家养老探访与互助"],
                ["养老服务"],
                ["雄县"],
                org_id="O8",
            ),
        ]
    )


@pytest.fixture
def toy_matcher(toy_targets):
    """A default matcher fitted on the toy library."""
    from matcher.matching.estimator import build_matcher

    return build_matcher().fit(toy_targets)


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> dict[str, Path]:
    """A model trained on the embedded libraries in a private models folder (trained once per run)."""
    from matcher.jobs.training import train_version

    models = tmp_path_factory.mktemp("models")
    database = f"sqlite:///{tmp_path_factory.mktemp('db') / 'matcher.sqlite3'}"
    # no re-ranker: `matcher batch` fits on files without decisions, and test_batch compares it with
    # this model over HTTP; the re-ranked paths are tested in test_rerank.py
    version = train_version(
        {"reranker__method": "none"}, data=ROOT / "data", models=models, database_url=database, evaluate=False
    )
    return {"models": models, "data": ROOT / "data", "version": version, "database": database}


@pytest.fixture
def models_copy(trained, tmp_path) -> Path:
    """A writable copy of the trained models folder, for tests that change it."""
    target_dir = tmp_path / "models"
    shutil.copytree(trained["models"], target_dir)
    return target_dir


@pytest.fixture
def make_app(trained):
    """Build a Flask app; by default it serves the trained model and its database."""
    from matcher.web import create_app

    def make(**config):
        defaults = {
            "TESTING": True,
            "MODELS_DIR": str(trained["models"]),
            "DATA_DIR": str(trained["data"]),
            "DATABASE_URL": trained["database"],
        }
        return create_app({**defaults, **{key: str(value) for key, value in config.items()}})

    return make


@pytest.fixture
def app(make_app):
    """The Flask app serving the trained model and the embedded libraries."""
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def cli_env(trained) -> dict[str, str]:
    """Environment for running the ``matcher`` CLI as a subprocess against the trained model."""
    env = dict(os.environ)
    env.update(
        MATCHER_MODELS_DIR=str(trained["models"]),
        MATCHER_DATA_DIR=str(trained["data"]),
        DATABASE_URL=trained["database"],
    )
    return env


def requires_shared(path: str) -> pytest.MarkDecorator:
    """Skip with a reason where ``../shared/<path>`` is absent (a plain clone on a user's machine)."""
    return pytest.mark.skipif(not (SHARED / path).exists(), reason=f"../shared/{path} is not beside this clone")


# ---------------------------------------------------------------- databases
PG_URL = os.environ.get("MATCHER_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _postgres_reachable() -> str | None:
    """None when PostgreSQL answers, else the reason it does not."""
    try:
        import psycopg

        with psycopg.connect(PG_URL.replace("postgresql+psycopg", "postgresql"), connect_timeout=3):
            return None
    except Exception as error:
        return f"PostgreSQL at {PG_URL} is not reachable: {error}"


@pytest.fixture(scope="session")
def postgres_schema_url():
    """A factory of URLs of fresh, empty PostgreSQL schemas (dropped at the end of the run)."""
    reason = _postgres_reachable()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (under CI=true the PostgreSQL tests must run)")
        pytest.skip(reason)
    import uuid

    import psycopg

    plain = PG_URL.replace("postgresql+psycopg", "postgresql")
    schemas: list[str] = []

    def make() -> str:
        schema = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(plain, autocommit=True) as connection:
            connection.execute(f"CREATE SCHEMA {schema}")
        schemas.append(schema)
        separator = "&" if "?" in PG_URL else "?"
        return f"{PG_URL}{separator}options=-csearch_path%3D{schema}"

    yield make
    with psycopg.connect(plain, autocommit=True) as connection:
        for schema in schemas:
            connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> str:
    """An empty database of each kind: a SQLite file, and a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'matcher.sqlite3'}"
    return request.getfixturevalue("postgres_schema_url")()
