"""Every reader of people's cells accepts the same cells: lists, yes/no words, header aliases."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from pydantic import TypeAdapter, ValidationError

from matcher.errors import LibraryError
from matcher.inputs import files, library
from matcher.inputs.cells import HEADER_ALIASES, NO_WORDS, YES_WORDS, aliases_of, cell_key, split_list, yes_no
from matcher.matching import judgments
from matcher.store import records

YES_CELLS = [*sorted(YES_WORDS), "TRUE", "Yes", " 是 ", "ＹＥＳ", "Ｔ"]
NO_CELLS = [*sorted(NO_WORDS), "FALSE", "No", " 否 ", "ＮＯ", "Ｆ"]
UNKNOWN_CELLS = ["maybe", "2", "暂停", "yes!", "是的"]
LIST_CELLS = {
    "个案管理;小组工作": ["个案管理", "小组工作"],
    "个案管理；小组工作": ["个案管理", "小组工作"],
    "个案管理、小组工作": ["个案管理", "小组工作"],
    " 个案管理 ; ;小组工作 ": ["个案管理", "小组工作"],
    "个案管理": ["个案管理"],
}


def _file_reader(tmp_path: Path, column: str, cells: list[str]) -> files.Table:
    path = tmp_path / f"{column}.jsonl"
    lines = [json.dumps({"id": f"E{n}", "text": "社区服务", column: cell}, ensure_ascii=False) for n, cell in enumerate(cells)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return files.read_table(path)


def _library_reader(cells: list[str]) -> list[bool]:
    frame = pd.DataFrame({"available": [cell.strip() for cell in cells]})  # the library reader strips every cell
    return library._parse_bool(frame, "available", Path("experts.csv")).tolist()


@pytest.mark.parametrize(("cells", "expected"), [(YES_CELLS, True), (NO_CELLS, False)])
def test_every_reader_reads_the_same_yes_no_words(tmp_path: Path, cells: list[str], expected: bool) -> None:
    assert [yes_no(cell) for cell in cells] == [expected] * len(cells)
    assert _file_reader(tmp_path, "available", cells).frame["available"].tolist() == [expected] * len(cells)
    flag = TypeAdapter(records.Flag)
    assert [flag.validate_python(cell) for cell in cells] == [expected] * len(cells)
    assert _library_reader(cells) == [expected] * len(cells)


@pytest.mark.parametrize("cell", UNKNOWN_CELLS)
def test_every_reader_refuses_the_same_unknown_words(tmp_path: Path, cell: str) -> None:
    assert yes_no(cell) is None
    with pytest.raises(files.TableError, match="available must be yes or no"):
        _file_reader(tmp_path, "available", [cell])
    with pytest.raises(ValidationError, match="expected true or false"):
        TypeAdapter(records.Flag).validate_python(cell)
    with pytest.raises(LibraryError, match="expected true or false"):
        _library_reader([cell])


def test_a_blank_yes_no_cell_means_yes_where_the_field_has_a_default(tmp_path: Path) -> None:
    assert _file_reader(tmp_path, "available", ["", "  "]).frame["available"].tolist() == [True, True]
    assert _library_reader(["", ""]) == [True, True]
    assert records.ExpertIn.model_fields["available"].default is True


@pytest.mark.parametrize(("cell", "expected"), list(LIST_CELLS.items()))
def test_every_reader_splits_list_cells_alike(tmp_path: Path, cell: str, expected: list[str]) -> None:
    assert split_list(cell) == expected
    assert _file_reader(tmp_path, "tags", [cell]).frame["tags"].tolist() == [expected]
    assert TypeAdapter(records.Tags).validate_python(cell) == expected


def test_header_aliases_name_fields_of_their_kind() -> None:
    for kind in records.MODELS:
        fields = set(records.MODELS[kind].model_fields)
        assert set(HEADER_ALIASES[kind].values()) <= fields, kind
        assert all(records.header_map(kind)[cell_key(alias)] == field for alias, field in HEADER_ALIASES[kind].items())
    assert set(HEADER_ALIASES["table"].values()) <= files._CANONICAL
    assert set(HEADER_ALIASES["judgments"].values()) <= set(judgments._FIELDS)
    for table in HEADER_ALIASES.values():
        assert all(alias == cell_key(alias) for alias in table)  # written as they are compared


def test_aliases_of_keeps_their_order() -> None:
    assert aliases_of("judgments", "target_id") == ("target_id", "expert_id", "目标编号", "专家编号")
    assert aliases_of("experts", "id") == ("id", "编号", "代码")
    assert aliases_of("conflicts", "org_id") == ("org_id", "organisation", "organization", "机构编号", "机构")
