"""The ``matcher`` command line, run as a subprocess like a user would."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT


def run(args: list[str], env: dict[str, str], cwd=ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "matcher.cli", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_match_json_is_the_http_body(cli_env, client) -> None:
    text = "我们机构刚成立，想请专家帮忙做SWOT分析和发展规划"
    result = run(["match", text, "--k", "3", "--json"], cli_env)
    assert result.returncode == 0, result.stderr
    assert "\\u" not in result.stdout and "专家" not in result.stderr
    body = json.loads(result.stdout)
    assert body == client.post("/v1/match", json={"text": text, "k": 3}).get_json()


def test_match_targets_and_human_output(cli_env) -> None:
    result = run(["match", "回迁社区老人心理慰藉", "--targets", "expert,project", "--k", "2"], cli_env)
    assert result.returncode == 0, result.stderr
    assert "== expert" in result.stdout and "== project" in result.stdout and "== resource" not in result.stdout
    assert result.stderr == ""  # jieba's start-up chatter is silenced


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["match", "个案管理", "--k", "0"], "k:"),
        (["match", "个案管理", "--targets", "venue"], "targets"),
        (["match", ""], "text"),
        (["train", "--params", "missing.json"], "missing.json"),
        (["frobnicate"], "No such command"),
    ],
)
def test_errors_are_one_line_and_exit_2(cli_env, args, message) -> None:
    result = run(args, cli_env)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_train_writes_a_version_and_refuses_a_corrupt_one(tmp_path, cli_env) -> None:
    env = {**cli_env, "MATCHER_MODELS_DIR": str(tmp_path)}
    params = tmp_path / "params.json"
    params.write_text(json.dumps({"tag_weight": 0.1, "vectorizer__char_ngram_range": [1, 3]}))
    result = run(["train", "--params", str(params)], env)
    assert result.returncode == 0, result.stderr
    version = (tmp_path / "ACTIVE").read_text().strip()
    manifest = json.loads((tmp_path / version / "manifest.json").read_text())
    assert manifest["params"]["tag_weight"] == 0.1 and manifest["params"]["vectorizer__char_ngram_range"] == [1, 3]
    assert manifest["libraries"]["sizes"]["experts"] >= 300

    skipped = run(["train", "--if-none-active"], env)
    assert skipped.returncode == 0 and "nothing to do" in skipped.stdout

    (tmp_path / version / "model.joblib").write_bytes(b"corrupt")
    result = run(["match", "个案管理"], env)
    assert result.returncode == 2
    assert "model.joblib" in result.stderr and "sha256" in result.stderr and "Traceback" not in result.stderr


def test_bad_params_name_the_key(tmp_path, cli_env) -> None:
    params = tmp_path / "params.json"
    params.write_text(json.dumps({"vectoriser__char_weight": 1}))
    result = run(["train", "--params", str(params), "--no-activate"], {**cli_env, "MATCHER_MODELS_DIR": str(tmp_path)})
    assert result.returncode == 2 and "vectoriser__char_weight" in result.stderr
    assert not (tmp_path / "ACTIVE").exists()


def test_no_model_is_a_clear_error(tmp_path, cli_env) -> None:
    result = run(["match", "个案管理"], {**cli_env, "MATCHER_MODELS_DIR": str(tmp_path / "none")})
    assert result.returncode == 2 and "matcher train" in result.stderr
