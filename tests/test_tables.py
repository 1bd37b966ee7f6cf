"""Tests of matcher.inputs.files: reading and validating one library file."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import openpyxl
import pandas as pd
import pytest

from matcher.errors import LibraryError
from matcher.inputs.files import COLUMNS, Problem, Table, TableError, read_table, write_rejects

LONG_TEXT = "社区养老服务需求评估与个案管理。" * 1875  # 30,000 characters


def write_csv(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def write_jsonl(path: Path, *lines: object) -> Path:
    rendered = [line if isinstance(line, str) else json.dumps(line, ensure_ascii=False) for line in lines]
    path.write_text("\n".join(rendered) + "\n", encoding="utf-8")
    return path


def write_xlsx(path: Path, *rows: list[object], other_sheet: list[list[object]] | None = None) -> Path:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "专家"
    for index, row in enumerate(rows, 1):
        for column, value in enumerate(row, 1):
            sheet.cell(row=index, column=column, value=value)
    if other_sheet is not None:
        second = workbook.create_sheet("其他")
        for row in other_sheet:
            second.append(row)
    workbook.save(path)
    return path


def problems_of(path: Path, **kwargs: bool) -> list[str]:
    with pytest.raises(TableError) as caught:
        read_table(path, **kwargs)
    return [str(p) for p in caught.value.problems]


def error_of(path: Path, **kwargs: bool) -> str:
    with pytest.raises(TableError) as caught:
        read_table(path, **kwargs)
    return str(caught.value)


# ----------------------------------------------------------------------------- formats


def test_csv_canonical_columns(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "experts.csv",
        "id,name,text,tags,counties,org_id,capacity,available\n"
        "E1,张老师,社区养老服务,养老;社区,城关区;七里河区,O7,3,是\n"
        "E2,,青少年心理辅导,,,,,\n",
    )
    table = read_table(path)
    assert isinstance(table, Table)
    assert table.path == str(path)
    assert list(table.frame.columns) == list(COLUMNS)
    assert table.frame.to_dict("records") == [
        {
            "row": 1,
            "id": "E1",
            "name": "张老师",
            "text": "社区养老服务",
            "tags": ["养老", "社区"],
            "counties": ["城关区", "七里河区"],
            "org_id": "O7",
            "org_name": None,
            "capacity": 3,
            "available": True,
        },
        {
            "row": 2,
            "id": "E2",
            "name": "E2",
            "text": "青少年心理辅导",
            "tags": [],
            "counties": [],
            "org_id": None,
            "org_name": None,
            "capacity": None,  # <NA> in the frame
            "available": True,
        },
    ]
    assert table.frame["capacity"].isna().tolist() == [False, True]
    dtypes = table.frame.dtypes.astype(str).to_dict()
    assert dtypes["row"] == "int64"
    assert dtypes["capacity"] == "Int64"
    assert dtypes["available"] == "bool"
    assert all(dtypes[c] == "object" for c in ("id", "name", "text", "tags", "counties", "org_id"))
    assert table.present == {"name", "tags", "counties", "org_id", "capacity", "available"}
    assert table.ignored_columns == []
    assert table.problems == []
    assert table.rejects.empty
    assert list(table.rejects.columns) == ["row", *(c for c in COLUMNS[1:] if c != "org_name"), "reason"]  # the file's


def test_csv_with_bom(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "bom.csv", "id,text\nE1,社区矫正\n", encoding="utf-8-sig")
    table = read_table(path)
    assert table.frame["id"].tolist() == ["E1"]
    assert table.frame["text"].tolist() == ["社区矫正"]
    assert table.present == frozenset()


def test_csv_gb18030(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_text(
        "编号,姓名,简介,专长,区县\n12,李华,长期从事农村留守儿童服务,儿童、家庭,榆中县；皋兰县\n",
        encoding="gb18030",
    )
    table = read_table(path)
    record = table.frame.iloc[0]
    assert record["id"] == "12"
    assert record["name"] == "李华"
    assert record["text"] == "长期从事农村留守儿童服务"
    assert record["tags"] == ["儿童", "家庭"]
    assert record["counties"] == ["榆中县", "皋兰县"]


def test_csv_undecodable_names_data_row(tmp_path: Path) -> None:
    path = tmp_path / "broken.csv"
    path.write_bytes(
        'id,text\nE1,"多行\n内容"\nE2,正常\n'.encode() + b"E3,\xff\xff bad\n",
    )
    # the quoted cell spans two lines: the bad bytes are on line 5 but in data row 3
    assert problems_of(path) == [
        f"{path}: row 3: cannot decode the bytes as UTF-8 or GB18030; save the file as UTF-8 (line 5 of the file)"
    ]


def test_csv_undecodable_header(tmp_path: Path) -> None:
    path = tmp_path / "broken.csv"
    path.write_bytes(b"id,te\xffxt\nE1,a\n")
    assert error_of(path) == (
        f"{path}: cannot decode the bytes as UTF-8 or GB18030; save the file as UTF-8 (in the header line)"
    )


def test_csv_blank_lines_are_counted(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "gaps.csv", "\nid,text\nE1,甲\n\nE2,\n")
    assert problems_of(path) == [f"{path}: row 3, column 'text': empty text"]


def test_csv_quoted_multiline_and_commas(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "quoted.csv", 'id,text\nE1,"第一行\n第二行，含逗号,以及英文逗号"\n')
    assert read_table(path).frame["text"].tolist() == ["第一行\n第二行，含逗号,以及英文逗号"]


def test_csv_keeps_strings(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "strings.csv", "id,text,org_id\n007,NA,00012\n")
    record = read_table(path).frame.iloc[0]
    assert (record["id"], record["text"], record["org_id"]) == ("007", "NA", "00012")


def test_csv_row_with_extra_cells(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "ragged.csv", "id,text\nE1,甲\nE2,乙,丙\n")
    assert error_of(path) == f"{path}: row 2: 3 cells but the header has 2; quote cells that contain commas"


def test_csv_unclosed_quote(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "quote.csv", 'id,text\nE1,甲\nE2,"乙\n')
    assert error_of(path) == f"{path}: row 2: a quoted cell is never closed"


def test_jsonl_list_and_string_tags(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "experts.jsonl",
        {"id": "E1", "text": "社区养老", "tags": ["养老", " 社区 ", ""], "counties": "城关区；安宁区"},
        "",
        {"id": 2, "title": "家庭教育", "tags": "亲子、家庭;学校", "capacity": 2, "available": False},
        {"id": "E3", "text": "残障康复", "tags": None, "counties": ["西固区"], "available": "否"},
    )
    table = read_table(path)
    assert table.frame["row"].tolist() == [1, 3, 4]
    assert table.frame["id"].tolist() == ["E1", "2", "E3"]
    assert table.frame["name"].tolist() == ["E1", "家庭教育", "E3"]
    assert table.frame["tags"].tolist() == [["养老", "社区"], ["亲子", "家庭", "学校"], []]
    assert table.frame["counties"].tolist() == [["城关区", "安宁区"], [], ["西固区"]]
    assert table.frame["capacity"].tolist() == [pd.NA, 2, pd.NA]
    assert table.frame["available"].tolist() == [True, False, False]
    assert table.present == {"tags", "counties", "capacity", "available"}


def test_ndjson_extension(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "needs.ndjson", {"编号": "N1", "内容": "需要督导"})
    assert read_table(path).frame["text"].tolist() == ["需要督导"]


def test_jsonl_row_problem_uses_line_number(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "needs.jsonl",
        {"id": "N1", "text": "甲"},
        "",
        "   ",
        {"id": "N2", "text": " "},
    )
    assert problems_of(path) == [f"{path}: line 4, column 'text': empty text"]


def test_jsonl_malformed_line(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "needs.jsonl", {"id": "N1", "text": "甲"}, "", '{"id": "N2", "text": }')
    assert error_of(path) == f"{path}: line 3: malformed JSON: Expecting value (column 22)"


def test_jsonl_line_not_an_object(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "needs.jsonl", {"id": "N1", "text": "甲"}, ["N2", "乙"])
    assert error_of(path) == f"{path}: line 2: not a JSON object (got list)"


def test_jsonl_undecodable_line(tmp_path: Path) -> None:
    path = tmp_path / "needs.jsonl"
    path.write_bytes('{"id": "N1", "text": "甲"}\n'.encode() + b'{"id": "N2", "text": "\xff"}\n')
    assert error_of(path).startswith(f"{path}: line 2: cannot decode the bytes as UTF-8 or GB18030")


def test_xlsx_first_sheet_only(tmp_path: Path) -> None:
    path = write_xlsx(
        tmp_path / "experts.xlsx",
        ["编号", "名称", "描述", "容量", "是否可用", "机构编号"],
        [12.0, "王老师", "社会工作督导", 3.0, True, 7],
        [],
        [13, None, "社区治理", None, "不可用", None],
        other_sheet=[["id", "text"], ["X1", "不应读取"]],
    )
    table = read_table(path)
    assert table.frame["row"].tolist() == [1, 3]
    assert table.frame["id"].tolist() == ["12", "13"]
    assert table.frame["name"].tolist() == ["王老师", "13"]
    assert table.frame["text"].tolist() == ["社会工作督导", "社区治理"]
    assert table.frame["capacity"].tolist() == [3, pd.NA]
    assert table.frame["available"].tolist() == [True, False]
    assert table.frame["org_id"].tolist() == ["7", None]


def test_xlsx_row_problems(tmp_path: Path) -> None:
    path = write_xlsx(
        tmp_path / "experts.xlsx",
        ["ID", "文本", "容量"],
        ["E1", "甲", 2.5],
        [None, None, None],
        ["E1", "乙", -1],
    )
    assert problems_of(path) == [
        f"{path}: row 1, column '容量': capacity must be a whole number of 0 or more, not '2.5'",
        f"{path}: row 3, column 'ID': duplicate id 'E1' (first in row 1)",
        f"{path}: row 3, column '容量': capacity must be a whole number of 0 or more, not '-1'",
    ]


def test_xlsx_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "broken.xlsx"
    path.write_bytes(b"this is not a zip file")
    assert error_of(path).startswith(f"{path}: cannot read the Excel file:")


def test_xlsx_empty_workbook(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "empty.xlsx")
    assert error_of(path) == f"{path}: the first sheet is empty"


# ---------------------------------------------------------------------------- headers


@pytest.mark.parametrize(
    ("header", "canonical"),
    [
        ("编号", "id"),
        ("ID", "id"),
        ("Id", "id"),
        (" ＩＤ ", "id"),
        ("名称", "name"),
        ("姓名", "name"),
        ("标题", "title"),
        ("描述", "description"),
        ("内容", "description"),
        ("简介", "description"),
        ("文本", "text"),
        ("TEXT", "text"),
        ("标签", "tags"),
        ("专长", "tags"),
        ("地区", "counties"),
        ("县区", "counties"),
        ("区县", "counties"),
        ("机构编号", "org_id"),
        ("ＯＲＧ＿ＩＤ", "org_id"),
        ("容量", "capacity"),
        ("是否可用", "available"),
    ],
)
def test_header_aliases(tmp_path: Path, header: str, canonical: str) -> None:
    values = {"id": "E1", "text": "社区服务", "name": "张三", "title": "标题甲", "description": "描述乙"}
    values |= {"tags": "甲;乙", "counties": "城关区", "org_id": "O1", "capacity": "4", "available": "否"}
    base = {"id": "id", "text": "text"}
    base.pop(canonical, None)
    if canonical in ("title", "description"):
        del base["text"]
    headers = [header, *base]
    cells = [values[canonical], *(values[c] for c in base)]
    path = write_csv(tmp_path / "aliases.csv", ",".join(headers) + "\n" + ",".join(cells) + "\n")
    table = read_table(path)
    record = table.frame.iloc[0]
    expected = {
        "id": "E1",
        "name": "张三",
        "title": "标题甲",
        "description": "描述乙",
        "text": "社区服务",
        "tags": ["甲", "乙"],
        "counties": ["城关区"],
        "org_id": "O1",
        "capacity": 4,
        "available": False,
    }[canonical]
    column = {"title": "text", "description": "text"}.get(canonical, canonical)
    assert record[column] == expected
    assert table.ignored_columns == []


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("id,text,标签,专长", "columns '标签' and '专长' both mean 'tags'; keep only one"),
        ("id,text,文本", "columns 'text' and '文本' both mean 'text'; keep only one"),
        ("id,text,ID", "columns 'id' and 'ID' both mean 'id'; keep only one"),
        ("编号, Id ,text", "columns '编号' and 'Id' both mean 'id'; keep only one"),
        ("id,描述,内容", "columns '描述' and '内容' both mean 'description'; keep only one"),
    ],
)
def test_duplicate_canonical_columns(tmp_path: Path, header: str, message: str) -> None:
    row = ",".join(["甲"] * len(header.split(",")))
    path = write_csv(tmp_path / "dup.csv", f"{header}\n{row}\n")
    with pytest.raises(TableError) as caught:
        read_table(path, skip_invalid=True)
    assert str(caught.value) == f"{path}: {message}"
    assert caught.value.problems[0].row is None


def test_ignored_columns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write_csv(tmp_path / "extra.csv", "id,备注,text,联系电话,,\nE1,老会员,社区服务,123,,\n")
    with caplog.at_level(logging.INFO, logger="matcher.inputs.files"):
        table = read_table(path)
    assert table.ignored_columns == ["备注", "联系电话"]
    assert "ignoring columns 备注, 联系电话" in caplog.text
    assert list(table.frame.columns) == list(COLUMNS)


def test_ignored_headerless_column_with_data(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "extra.csv", "id,text,\nE1,社区服务,多余\n")
    assert read_table(path).ignored_columns == ["(column 3)"]


# ----------------------------------------------------------------------------- values


def test_title_and_description(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "projects.csv",
        "编号,标题,描述,文本\n"
        "P1,助老项目,为独居老人提供上门探访,\n"
        "P2,仅有标题,,\n"
        "P3,,仅有描述,\n"
        "P4,标题,描述,文本优先\n",
    )
    frame = read_table(path).frame
    assert frame["text"].tolist() == ["助老项目\n为独居老人提供上门探访", "仅有标题", "仅有描述", "文本优先"]
    assert frame["name"].tolist() == ["助老项目", "仅有标题", "P3", "标题"]


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("养老;社区", ["养老", "社区"]),
        ("养老；社区", ["养老", "社区"]),
        ("养老、社区", ["养老", "社区"]),
        (" 养老 ;; 、社区；", ["养老", "社区"]),
        ("养老,社区", ["养老,社区"]),
        ("养老，社区", ["养老，社区"]),
        ("", []),
    ],
)
def test_list_separators(tmp_path: Path, cell: str, expected: list[str]) -> None:
    path = write_csv(tmp_path / "tags.csv", f'id,text,tags,counties\nE1,社区服务,"{cell}","{cell}"\n')
    record = read_table(path).frame.iloc[0]
    assert record["tags"] == expected
    assert record["counties"] == expected


@pytest.mark.parametrize(("cell", "expected"), [("", None), ("0", 0), ("3", 3), (" 12 ", 12), ("5.0", 5), ("７", 7)])
def test_capacity_valid(tmp_path: Path, cell: str, expected: int | None) -> None:
    path = write_csv(tmp_path / "cap.csv", f"id,text,capacity\nE1,社区服务,{cell}\n")
    value = read_table(path).frame["capacity"].iloc[0]
    assert (value is pd.NA) if expected is None else (value == expected)


@pytest.mark.parametrize("cell", ["abc", "-1", "2.5", "三"])
def test_capacity_invalid(tmp_path: Path, cell: str) -> None:
    path = write_csv(tmp_path / "cap.csv", f"id,text,容量\nE1,社区服务,{cell}\n")
    assert problems_of(path) == [
        f"{path}: row 1, column '容量': capacity must be a whole number of 0 or more, not '{cell}'"
    ]


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("", True),
        ("true", True),
        ("TRUE", True),
        ("1", True),
        ("yes", True),
        ("Y", True),
        ("t", True),
        ("是", True),
        ("可用", True),
        ("false", False),
        ("False", False),
        ("0", False),
        ("no", False),
        ("N", False),
        ("F", False),
        ("否", False),
        ("不可用", False),
    ],
)
def test_available_valid(tmp_path: Path, cell: str, expected: bool) -> None:
    path = write_csv(tmp_path / "avail.csv", f"id,text,available\nE1,社区服务,{cell}\n")
    assert read_table(path).frame["available"].tolist() == [expected]


@pytest.mark.parametrize("cell", ["maybe", "2", "暂停"])
def test_available_invalid(tmp_path: Path, cell: str) -> None:
    path = write_csv(tmp_path / "avail.csv", f"id,text,是否可用\nE1,社区服务,是\nE2,社区服务,{cell}\n")
    assert problems_of(path) == [
        f"{path}: row 2, column '是否可用': available must be yes or no "
        f"(true/false, 1/0, y/n, 是/否, 可用/不可用), not '{cell}'"
    ]


def test_available_absent_defaults_true(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "plain.csv", "id,text\nE1,社区服务\n")
    table = read_table(path)
    assert table.frame["available"].tolist() == [True]
    assert "available" not in table.present


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".xlsx"])
def test_long_text_is_kept_whole(tmp_path: Path, suffix: str) -> None:
    assert len(LONG_TEXT) == 30_000
    path = tmp_path / f"long{suffix}"
    if suffix == ".csv":
        with path.open("w", encoding="utf-8", newline="") as fh:
            csv.writer(fh).writerows([["id", "text"], ["E1", LONG_TEXT], ["E2", "短"]])
    elif suffix == ".jsonl":
        write_jsonl(path, {"id": "E1", "text": LONG_TEXT}, {"id": "E2", "text": "短"})
    else:
        write_xlsx(path, ["id", "text"], ["E1", LONG_TEXT], ["E2", "短"])
    frame = read_table(path).frame
    assert frame["text"].tolist() == [LONG_TEXT, "短"]


# ----------------------------------------------------------------------- row problems


def test_row_problems_all_reported(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "needs.csv",
        "编号,文本,容量,是否可用\nN1,需要督导,,\n,缺少编号,,\nN1,重复,,\nN3,,,\nN4,容量错误,abc,\nN5,可用错误,,也许\n",
    )
    with pytest.raises(TableError) as caught:
        read_table(path)
    error = caught.value
    assert isinstance(error, LibraryError)
    assert [str(p) for p in error.problems] == [
        f"{path}: row 2, column '编号': empty id",
        f"{path}: row 3, column '编号': duplicate id 'N1' (first in row 1)",
        f"{path}: row 4, column '文本': empty text",
        f"{path}: row 5, column '容量': capacity must be a whole number of 0 or more, not 'abc'",
        f"{path}: row 6, column '是否可用': available must be yes or no (true/false, 1/0, y/n, 是/否, 可用/不可用), "
        "not '也许'",
    ]
    assert str(error) == f"{path}: row 2, column '编号': empty id (and 4 more)"
    assert error.problems[0] == Problem(str(path), 2, "编号", "empty id")


def test_empty_text_names_title_and_description(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "needs.csv", "id,标题,描述\nN1,有标题,\nN2,, \n")
    assert problems_of(path) == [f"{path}: row 2, column '标题': empty text ('标题' and '描述' are both empty)"]


def test_problem_str() -> None:
    assert str(Problem("needs.csv", 3, "text", "empty text")) == "needs.csv: row 3, column 'text': empty text"
    assert str(Problem("needs.csv", None, "id", "missing column 'id'")) == "needs.csv: missing column 'id'"
    assert str(Problem("needs.jsonl", 3, None, "bad")) == "needs.jsonl: line 3: bad"


# ------------------------------------------------------------------------ file level


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "missing.csv"
    assert error_of(path, skip_invalid=True) == f"{path}: file not found"
    assert error_of(tmp_path / "missing.xlsx") == f"{tmp_path / 'missing.xlsx'}: file not found"


def test_directory(tmp_path: Path) -> None:
    path = tmp_path / "folder.csv"
    path.mkdir()
    assert error_of(path).startswith(f"{path}: ")


@pytest.mark.parametrize("name", ["experts.xls", "experts.txt", "experts"])
def test_unsupported_extension(tmp_path: Path, name: str) -> None:
    path = write_csv(tmp_path / name, "id,text\nE1,甲\n")
    message = error_of(path)
    assert message.startswith(f"{path}: unsupported file type")
    assert ".csv" in message and ".jsonl" in message and ".ndjson" in message and ".xlsx" in message


def test_missing_id_column(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "needs.csv", "名称,文本\n甲,乙\n")
    with pytest.raises(TableError) as caught:
        read_table(path, skip_invalid=True)
    assert str(caught.value).startswith(f"{path}: missing column 'id'")
    assert caught.value.problems[0].column == "id"


def test_missing_text_column(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "needs.jsonl", {"id": "N1", "name": "甲"})
    assert error_of(path).startswith(f"{path}: missing column 'text'")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.csv", "", "the file is empty"),
        ("empty.csv", "\n \n", "the file is empty"),
        ("empty.csv", "id,text\n", "no data rows"),
        ("empty.csv", "id,text\n,\n\n", "no data rows"),
        ("empty.jsonl", "", "the file is empty"),
        ("empty.jsonl", "\n\n", "the file is empty"),
    ],
)
def test_no_data_rows(tmp_path: Path, name: str, content: str, message: str) -> None:
    path = write_csv(tmp_path / name, content)
    assert error_of(path, skip_invalid=True) == f"{path}: {message}"


def test_xlsx_header_only(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "header.xlsx", ["编号", "文本"])
    assert error_of(path) == f"{path}: no data rows"


# ---------------------------------------------------------------------- skip_invalid


def test_skip_invalid_and_rejects_file(tmp_path: Path) -> None:
    experts = write_csv(
        tmp_path / "experts.csv",
        "编号,文本,容量,备注\nE1,社区养老,2,老会员\nE2,,1,新会员\nE1,重复,,\nE4,青少年,abc,\n",
    )
    needs = write_jsonl(
        tmp_path / "needs.jsonl",
        {"id": "N1", "text": "需要督导", "tags": ["督导"]},
        {"id": "N2", "text": "", "tags": ["评估", "培训"], "联系人": "王"},
    )
    first = read_table(experts, skip_invalid=True)
    assert first.frame["id"].tolist() == ["E1"]
    assert first.ignored_columns == ["备注"]
    assert [str(p) for p in first.problems] == [
        f"{experts}: row 2, column '文本': empty text",
        f"{experts}: row 3, column '编号': duplicate id 'E1' (first in row 1)",
        f"{experts}: row 4, column '容量': capacity must be a whole number of 0 or more, not 'abc'",
    ]
    assert list(first.rejects.columns) == ["row", "编号", "文本", "容量", "备注", "reason"]
    assert first.rejects.to_dict("records") == [
        {"row": 2, "编号": "E2", "文本": "", "容量": "1", "备注": "新会员", "reason": "文本: empty text"},
        {
            "row": 3,
            "编号": "E1",
            "文本": "重复",
            "容量": "",
            "备注": "",
            "reason": "编号: duplicate id 'E1' (first in row 1)",
        },
        {
            "row": 4,
            "编号": "E4",
            "文本": "青少年",
            "容量": "abc",
            "备注": "",
            "reason": "容量: capacity must be a whole number of 0 or more, not 'abc'",
        },
    ]
    second = read_table(needs, skip_invalid=True)
    assert second.frame["id"].tolist() == ["N1"]
    assert second.ignored_columns == ["联系人"]

    out = tmp_path / "rejects.csv"
    out.write_text("old", encoding="utf-8")
    write_rejects([first, second], out)
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    with out.open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows == [
        ["file", "row", "编号", "文本", "容量", "备注", "id", "text", "tags", "联系人", "reason"],
        [str(experts), "2", "E2", "", "1", "新会员", "", "", "", "", "文本: empty text"],
        [str(experts), "3", "E1", "重复", "", "", "", "", "", "", "编号: duplicate id 'E1' (first in row 1)"],
        [
            str(experts),
            "4",
            "E4",
            "青少年",
            "abc",
            "",
            "",
            "",
            "",
            "",
            "容量: capacity must be a whole number of 0 or more, not 'abc'",
        ],
        [str(needs), "2", "", "", "", "", "N2", "", '["评估", "培训"]', "王", "text: empty text"],
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["experts.csv", "needs.jsonl", "rejects.csv"]


def test_write_rejects_without_rejects(tmp_path: Path) -> None:
    table = read_table(write_csv(tmp_path / "ok.csv", "id,text\nE1,甲\n"), skip_invalid=True)
    out = tmp_path / "rejects.csv"
    write_rejects([table], out)
    assert out.read_text(encoding="utf-8-sig").splitlines() == ["file,row,id,text,reason"]


def test_rejects_reserved_and_repeated_headers(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "odd.csv", "id,text,reason,备注,备注\nE1,,因为,甲,乙\nE2,好,,,\n")
    table = read_table(path, skip_invalid=True)
    assert table.ignored_columns == ["reason", "备注"]
    assert list(table.rejects.columns) == [
        "row",
        "id",
        "text",
        "reason (column 3)",
        "备注",
        "备注 (column 5)",
        "reason",
    ]


def test_skip_invalid_without_valid_rows(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "bad.csv", "id,text\nE1,\n,甲\n")
    with pytest.raises(TableError) as caught:
        read_table(path, skip_invalid=True)
    assert [str(p) for p in caught.value.problems] == [
        f"{path}: no valid rows: all 2 rows are invalid",
        f"{path}: row 1, column 'text': empty text",
        f"{path}: row 2, column 'id': empty id",
    ]
    assert str(caught.value) == f"{path}: no valid rows: all 2 rows are invalid (and 2 more)"


def test_skip_invalid_keeps_file_level_errors(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "needs.jsonl", {"id": "N1", "text": "甲"}, "{not json")
    assert error_of(path, skip_invalid=True).startswith(f"{path}: line 2: malformed JSON")
