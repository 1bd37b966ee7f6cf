"""The analyst notebooks run headless against the current code, and are committed without outputs."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.conftest import ROOT

NOTEBOOKS = ROOT / "notebooks"


def notebooks() -> list[str]:
    return sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))


@pytest.mark.parametrize("name", notebooks())
def test_committed_notebooks_have_no_outputs(name: str) -> None:
    notebook = json.loads((NOTEBOOKS / name).read_text(encoding="utf-8"))
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [] and cell.get("execution_count") is None, f"{name}: strip the outputs"
    assert any("parameters" in c.get("metadata", {}).get("tags", []) for c in notebook["cells"]), (
        f"{name}: no parameters cell"
    )


@pytest.mark.parametrize("name", notebooks())
def test_notebook_runs(name: str, tmp_path, trained) -> None:
    papermill = pytest.importorskip("papermill")
    shutil.copytree(trained["models"], tmp_path / "models")  # an active version to compare with
    parameters = {
        "data_dir": str(ROOT / "data"),
        "database_url": f"sqlite:///{tmp_path / 'matcher.sqlite3'}",
        "output_dir": str(tmp_path / "out"),
        "models_dir": str(tmp_path / "models"),
        **SMALL.get(name, {}),
    }
    papermill.execute_notebook(
        str(NOTEBOOKS / name),
        str(tmp_path / name),
        parameters=parameters,
        cwd=str(NOTEBOOKS),
        kernel_name="python3",
        progress_bar=False,
        execution_timeout=300,
    )


# Small parameters per notebook, so that the suite stays fast. The benchmark parts read ../shared
# where it is beside the clone and are skipped by the notebooks themselves where it is absent.
SMALL: dict[str, dict] = {
    "02_train_evaluate.ipynb": {"resamples": 30, "bench_needs": 0, "examples": ["N0001"]},
    "03_tune.ipynb": {
        "bench_dir": str(ROOT.parent / "shared" / "bench" / "zh"),
        "bench_needs": 150,
        "folds": 2,
        "depth": 20,
        "grid": {"matcher__vectorizer__weighting": ["tfidf", "bm25"]},
    },
}
