"""The embedded sample libraries: sizes, consistency, and clear errors for bad files."""

from __future__ import annotations

import shutil

import pytest

from matcher.errors import LibraryError
from matcher.inputs.frames import needs_frame, targets_frame
from matcher.inputs.library import load_libraries, open_engagements
from tests.conftest import ROOT

DATA = ROOT / "data"


@pytest.fixture(scope="module")
def libs():
    return load_libraries(DATA)


def test_sizes_meet_the_brief(libs) -> None:
    sizes = libs.sizes()
    assert sizes["taxonomy"] >= 18
    assert sizes["organisations"] >= 40
    assert sizes["needs"] >= 300
    assert sizes["experts"] >= 300
    assert sizes["resources"] >= 100
    assert sizes["projects"] >= 60
    assert sizes["decisions"] >= 1000


def test_fields_and_values(libs) -> None:
    assert set(libs.organisations["stage"]) == {"初创期", "成长期", "成熟期"}
    assert set(libs.needs["status"]) == {"open", "matched", "closed"}
    lengths = libs.needs["description"].str.len()
    assert lengths.min() >= 30 and lengths.max() <= 300
    assert libs.experts["bio"].str.len().max() <= 400
    assert (libs.experts["bio"] == "").any(), "some experts have an empty bio"
    assert set(libs.decisions["decision"]) <= {"accepted", "rejected", "completed"}
    assert libs.decisions["rating"].dropna().between(1, 5).all()


def test_messy_text_is_present(libs) -> None:
    text = "".join(libs.needs["description"])
    assert any(ch in text for ch in "個會機構與務"), "some needs are in traditional characters"
    assert "(huì)" in text or "(wù)" in text, "some needs carry pinyin annotations"
    assert "，" in text


def test_open_engagements_never_exceed_capacity(libs) -> None:
    load = open_engagements(libs.decisions)
    capacity = libs.experts.set_index("id")["capacity"]
    assert (load <= capacity.reindex(load.index)).all()
    assert (load == capacity.reindex(load.index)).any(), "some experts are fully booked"


def test_targets_frame_keeps_every_target(libs) -> None:
    frame = targets_frame(libs)
    assert len(frame) == len(libs.experts) + len(libs.resources) + len(libs.projects)
    empty_bio = libs.experts.loc[libs.experts["bio"] == "", "id"].iloc[0]
    texts = frame.loc[frame["id"] == empty_bio, "texts"].iloc[0]
    assert texts[0].startswith("专长：")


def test_needs_frame(libs) -> None:
    frame = needs_frame(libs, ["N0001"])
    assert frame.loc[0, "id"] == "N0001" and frame.loc[0, "counties"]


@pytest.mark.parametrize(
    ("file", "edit", "message"),
    [
        ("needs.csv", lambda s: s.replace("org_id", "org", 1), r"needs\.csv: missing column 'org_id'"),
        ("experts.csv", lambda s: s.replace(",true,", ",maybe,", 1), r"experts\.csv: row \d+, column 'available'"),
        ("needs.csv", lambda s: s + s.splitlines()[1] + "\n", r"needs\.csv: row \d+, column 'id': duplicate id"),
        ("taxonomy.csv", lambda s: s.replace(s.splitlines()[1].split(",")[1], "无此类别", 1), "is not in the taxonomy"),
    ],
)
def test_bad_library_files_name_file_row_and_column(tmp_path, file, edit, message) -> None:
    copy = tmp_path / "data"
    shutil.copytree(DATA, copy, ignore=shutil.ignore_patterns("*.py", "*.md"))
    path = copy / file
    path.write_text(edit(path.read_text(encoding="utf-8")), encoding="utf-8")
    with pytest.raises(LibraryError, match=message):
        load_libraries(copy)


def test_missing_file(tmp_path) -> None:
    with pytest.raises(LibraryError, match=r"taxonomy\.csv: file not found"):
        load_libraries(tmp_path)


def test_generator_reproduces_the_committed_files(tmp_path) -> None:
    import subprocess
    import sys

    shutil.copy(DATA / "generate.py", tmp_path / "generate.py")
    shutil.copy(DATA / "places.csv", tmp_path / "places.csv")  # the generator's one input: the table of places
    subprocess.run([sys.executable, str(tmp_path / "generate.py")], check=True, capture_output=True, timeout=120)
    for committed in sorted(DATA.glob("*.csv")):
        assert (tmp_path / committed.name).read_bytes() == committed.read_bytes(), committed.name
