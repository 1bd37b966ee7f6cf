"""Model versions: save, activate, load with checksum, refuse tampered artefacts."""

from __future__ import annotations

import hashlib
import json
import pickle

import pandas as pd
import pytest

from matcher.errors import ModelError, NotFoundError
from matcher.matching import persist
from matcher.text.segment import SEGMENTERS, segmenter


@pytest.fixture
def saved(toy_matcher, tmp_path):
    version = persist.save(toy_matcher, root=tmp_path, libraries={"sizes": {"experts": 5}})
    return tmp_path, version


def test_layout_and_manifest(saved) -> None:
    root, version = saved
    assert persist.VERSION_PATTERN.match(version)
    assert (root / "ACTIVE").read_text().strip() == version
    manifest = json.loads((root / version / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["version"] == version
    assert manifest["params"]["tag_weight"] == 0.2
    assert manifest["params"]["vectorizer__char_ngram_range"] == [1, 2]
    assert manifest["libraries"] == {"sizes": {"experts": 5}}
    assert {"scikit-learn", "numpy", "jieba", "rjieba", "opencc", "python"} <= set(manifest["packages"])
    assert manifest["segmenter"] == segmenter()  # the segmenter that cut the fitted texts, with its version
    assert manifest["segmenter"]["name"] in SEGMENTERS and manifest["segmenter"]["version"] != "not installed"
    assert len(manifest["sha256"]) == 64 and manifest["created_at"].endswith("Z")


def test_round_trip_gives_equal_scores(saved, toy_matcher) -> None:
    root, _ = saved
    loaded, _ = persist.load(root=root)
    needs = pd.DataFrame({"id": ["N1", "N2"], "text": ["个案管理与转介", "小组工作坊"]})
    pd.testing.assert_frame_equal(loaded.match(needs, k=3), toy_matcher.match(needs, k=3))
    assert loaded.get_params().keys() == toy_matcher.get_params().keys()


def test_versions_sort_in_time_and_no_activate(saved, toy_matcher) -> None:
    root, first = saved
    second = persist.save(toy_matcher, root=root, activate_version=False)
    assert persist.list_versions(root) == sorted([first, second]) and second > first
    assert persist.active_version(root) == first
    persist.activate(second, root=root)
    assert persist.active_version(root) == second
    with pytest.raises(NotFoundError, match="no model version"):
        persist.activate("20990101T000000Z", root=root)


def test_tampered_artefact_is_refused_and_never_unpickled(saved, tmp_path) -> None:
    root, version = saved
    marker = tmp_path / "unpickled"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (root / version / "model.joblib").write_bytes(pickle.dumps(Evil()))
    with pytest.raises(ModelError, match=r"model\.joblib: sha256 .* does not match"):
        persist.load(root=root)
    assert not marker.exists()


def test_names_pickled_before_the_move_are_found_where_they_live_now(tmp_path) -> None:
    """A version saved by the flat package names ``matcher.model._TypeIndex`` and the function
    ``matcher.text.normalise`` (now a module): each is read as the object that lives on."""
    from matcher.matching.index import TypeIndex
    from matcher.text.normalise import normalise

    path = tmp_path / "old.pkl"
    path.write_bytes(b"(cmatcher.model\n_TypeIndex\ncmatcher.text\nnormalise\ncmatcher.vectorize\nTextVectorizer\nt.")
    index, function, vectorizer = persist.unpickle(path)
    assert index is TypeIndex and function is normalise and vectorizer.__module__ == "matcher.matching.vectorize"
    assert persist.moved("sklearn.base", "clone") == ("sklearn.base", "clone")  # what did not move stays


def test_a_version_naming_a_class_that_is_gone_is_refused(saved) -> None:
    """An artefact naming a class that no longer exists (``_TypeIndex`` is ``TypeIndex`` in its own module
    now) is refused with a ModelError that says to retrain, not an unpickling traceback."""
    root, version = saved
    artefact = root / version / "model.joblib"
    artefact.write_bytes(b"cmatcher.matching.estimator\n_TypeIndex\n.")  # a pickle of the old class path
    manifest = json.loads((root / version / "manifest.json").read_text(encoding="utf-8"))
    manifest["sha256"] = hashlib.sha256(artefact.read_bytes()).hexdigest()
    (root / version / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(ModelError, match=r"saved by an older matcher.*matcher train"):
        persist.load(root=root)


def test_missing_things_are_named(tmp_path) -> None:
    with pytest.raises(ModelError, match="no active model"):
        persist.load(root=tmp_path)
    with pytest.raises(NotFoundError, match="no model version '20990101T000000Z'"):
        persist.load("20990101T000000Z", root=tmp_path)
