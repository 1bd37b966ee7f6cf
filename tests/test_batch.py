"""Tests of ``matcher batch``: files in, the flat score table out, through the same scoring as the API."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import openpyxl
import pandas as pd
import pyarrow.parquet as pq
import pytest

from matcher.errors import BatchError
from matcher.inputs import frames
from matcher.inputs.files import TableError, read_table
from matcher.jobs import batch
from matcher.jobs.batch import check_inputs, run_batch
from matcher.jobs.chunks import ChunkOptions
from matcher.jobs.output import PARQUET_SCHEMA, write_matches
from matcher.matching.estimator import MATCH_COLUMNS, build_matcher

ROOT = Path(__file__).resolve().parents[1]
HEADER = "need_id,target_type,target_id,rank,score"
LONG_TEXT = "社区养老服务需求评估与个案管理督导。" * 1667  # 30,006 characters

NEEDS: list[dict[str, Any]] = [
    {
        "id": "N3",
        "text": "我们需要个案管理方面的督导，学习转介流程",
        "tags": ["个案管理"],
        "counties": ["雄县"],
        "org_id": "O1",
    },
    {
        "id": "N1",
        "text": "社区里失能老人多，想开展居家养老服务",
        "tags": ["养老服务"],
        "counties": ["安新县"],
        "org_id": "O8",
    },
    {
        "id": "N2",
        "text": "学校里出现欺凌现象，想做儿童保护项目",
        "tags": ["儿童保护"],
        "counties": ["容城县"],
        "org_id": "O2",
    },
]
EXPERTS: list[dict[str, Any]] = [
    {
        "id": "E01",
        "name": "周敏",
        "text": "长期研究个案管理的流程与转介，带过多期个案会议督导。",
        "tags": ["个案管理"],
        "counties": ["雄县", "容城县"],
        "org_id": None,
        "capacity": 3,
        "available": True,
    },
    {
        "id": "E02",
        "name": "李强",
        "text": "擅长设计和带领小组工作，开展过小组工作实务工作坊。",
        "tags": ["小组工作"],
        "counties": ["容城县"],
        "org_id": None,
        "capacity": 2,
        "available": None,
    },
    {
        "id": "E03",
        "name": "王芳",
        "text": "关注居家养老与失能老人照护，熟悉为老服务项目。",
        "tags": ["养老服务"],
        "counties": ["安新县"],
        "org_id": None,
        "capacity": None,
        "available": True,
    },
    {
        "id": "E04",
        "name": "赵磊",
        "text": "社区养老服务机构的战略规划与理事会建设。",
        "tags": ["战略规划"],
        "counties": ["雄县"],
        "org_id": "O8",
        "capacity": 1,
        "available": None,
    },
    {
        "id": "E05",
        "name": "陈静",
        "text": "儿童保护与预防校园欺凌，心语小屋项目督导。",
        "tags": ["儿童保护"],
        "counties": ["容城县"],
        "org_id": None,
        "capacity": 2,
        "available": True,
    },
]
RESOURCES: list[dict[str, Any]] = [
    {
        "id": "R01",
        "name": "个案管理技巧虚拟仿真实验系统",
        "text": "三维虚拟实验模拟个案会谈与转介",
        "tags": ["个案管理"],
        "counties": ["容城县"],
    },
    {
        "id": "R02",
        "name": "孵化基地共享办公区",
        "text": "免费办公场地与会议室，可办社区活动",
        "tags": [],
        "counties": [],
    },
]
PROJECTS: list[dict[str, Any]] = [
    {
        "id": "P01",
        "name": "护苗行动",
        "text": "未成年人关爱保护，预防校园欺凌，心语小屋",
        "tags": ["儿童保护"],
        "counties": ["容城县"],
        "org_id": "O9",
    },
    {
        "id": "P02",
        "name": "银龄相伴",
        "text": "回迁社区老人居家养老探访与互助",
        "tags": ["养老服务"],
        "counties": ["雄县"],
        "org_id": "O8",
    },
]
LIBRARY = {"needs": NEEDS, "expert": EXPERTS, "resource": RESOURCES, "project": PROJECTS}
CHINESE = {
    "needs": {"id": "编号", "text": "文本", "tags": "标签", "counties": "地区", "org_id": "机构编号"},
    "expert": {
        "id": "编号",
        "name": "姓名",
        "text": "简介",
        "tags": "专长",
        "counties": "区县",
        "org_id": "机构编号",
        "capacity": "容量",
        "available": "是否可用",
    },
    "resource": {"id": "编号", "name": "名称", "text": "描述", "tags": "标签", "counties": "县区"},
    "project": {"id": "编号", "name": "名称", "text": "内容", "tags": "标签", "counties": "县区", "org_id": "机构编号"},
}
FILE_NAMES = {"needs": "needs", "expert": "experts", "resource": "resources", "project": "projects"}


# ------------------------------------------------------------------------------ helpers


def cell(value: Any, fmt: str) -> Any:
    """One value as a user's file holds it."""
    if isinstance(value, list):
        return value if fmt == "jsonl" else ("、" if fmt == "xlsx" else ";").join(value)
    if isinstance(value, bool):
        return value if fmt == "jsonl" else ("是" if value else "否")
    if value is None:
        return None if fmt in ("jsonl", "xlsx") else ""
    if isinstance(value, int) and fmt == "csv":
        return str(value)
    return value


def write_rows(
    path: Path,
    rows: list[dict[str, Any]],
    *,
    headers: dict[str, str] | None = None,
    encoding: str = "utf-8",
    extra: dict[str, str] | None = None,
) -> Path:
    """Write ``rows`` as CSV, JSONL or XLSX (by the suffix), with ``headers`` renaming the columns."""
    fmt = path.suffix.lstrip(".")
    columns = list(rows[0])
    labels = [(headers or {}).get(c, c) for c in columns]
    extra = extra or {}
    if fmt == "csv":
        lines = [",".join([*labels, *extra])]
        for row in rows:
            cells = [str(cell(row[c], fmt)) for c in columns] + list(extra.values())
            lines.append(",".join(f'"{c}"' if "," in c or "\n" in c else c for c in cells))
        path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    elif fmt == "jsonl":
        objects = [
            {**{lab: cell(row[c], fmt) for c, lab in zip(columns, labels, strict=True)}, **extra} for row in rows
        ]
        path.write_text("".join(json.dumps(o, ensure_ascii=False) + "\n" for o in objects), encoding="utf-8")
    else:
        workbook = openpyxl.Workbook()
        sheet = workbook.active
        sheet.append([*labels, *extra])
        for row in rows:
            sheet.append([cell(row[c], fmt) for c in columns] + list(extra.values()))
        workbook.save(path)
    return path


def write_library(
    folder: Path, fmt: str | dict[str, str] = "csv", *, encoding: str = "utf-8", chinese: bool = False
) -> dict[str, Path]:
    """The test library as files: role -> path (``needs``, ``expert``, ``resource``, ``project``)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for role, rows in LIBRARY.items():
        suffix = fmt if isinstance(fmt, str) else fmt[role]
        path = folder / f"{FILE_NAMES[role]}.{suffix}"
        paths[role] = write_rows(path, rows, headers=CHINESE[role] if chinese else None, encoding=encoding)
    return paths


def targets_of(paths: dict[str, Path]) -> dict[str, Path]:
    return {t: p for t, p in paths.items() if t != "needs"}


def read_scores(path: Path) -> list[list[str]]:
    """The rows of a CSV score table after the header."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == HEADER.split(",")
    return rows[1:]


def run_cli(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m matcher.cli batch ARGS`` in ``cwd``; by default with model and data folders that must stay unused."""
    if env is None:
        env = dict(os.environ)
        env.update(MATCHER_MODELS_DIR=str(cwd / "no-models"), MATCHER_DATA_DIR=str(cwd / "no-data"))
        env.pop("COLUMNS", None)
    return subprocess.run(
        [sys.executable, "-m", "matcher.cli", "batch", *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=300,
        check=False,
    )


def cli_args(paths: dict[str, Path]) -> list[str | Path]:
    args: list[str | Path] = ["--needs", paths["needs"], "--experts", paths["expert"]]
    if "resource" in paths:
        args += ["--resources", paths["resource"]]
    if "project" in paths:
        args += ["--projects", paths["project"]]
    return args


def leftovers(folder: Path) -> list[str]:
    """Temporary files left in ``folder``."""
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


@pytest.fixture
def library(tmp_path: Path) -> dict[str, Path]:
    return write_library(tmp_path / "in")


@pytest.fixture
def baseline(library: dict[str, Path], tmp_path: Path) -> bytes:
    """The CSV output of the library in UTF-8 CSV with English headers."""
    out = tmp_path / "baseline.csv"
    run_batch(library["needs"], targets_of(library), out, k=10)
    return out.read_bytes()


# --------------------------------------------------------------------------- end to end


def test_cli_writes_the_score_table(library: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    result = run_cli(*cli_args(library), "--k", "2", "--out", out, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.startswith("wrote ")
    assert f"to {out}" in result.stdout

    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf" + HEADER.encode() + b"\n")
    assert b"\r" not in raw and raw.endswith(b"\n")
    rows = read_scores(out)
    assert rows
    assert all(re.fullmatch(r"[01]\.\d{6}", score) for *_, score in rows)
    # sorted by need (input order), target type (expert, resource, project), rank; at most k each
    need_order, type_order = {"N3": 0, "N1": 1, "N2": 2}, {"expert": 0, "resource": 1, "project": 2}
    keys = [(need_order[n], type_order[t], int(r)) for n, t, _, r, _ in rows]
    assert keys == sorted(keys)
    groups: dict[tuple[str, str], list[list[str]]] = {}
    for row in rows:
        groups.setdefault((row[0], row[1]), []).append(row)
    for group in groups.values():
        assert [int(r[3]) for r in group] == list(range(1, len(group) + 1))
        assert len(group) <= 2
        scores = [float(r[4]) for r in group]
        assert scores == sorted(scores, reverse=True)
    assert {t for _, t in groups} == {"expert", "resource", "project"}
    assert rows[0][:3] == ["N3", "expert", "E01"]
    # neither models/ nor the data folder was read or created
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "out.csv"]


def test_cli_parquet(library: dict[str, Path], tmp_path: Path) -> None:
    csv_out, parquet_out = tmp_path / "out.csv", tmp_path / "out.parquet"
    assert run_cli(*cli_args(library), "--out", csv_out, cwd=tmp_path).returncode == 0
    result = run_cli(*cli_args(library), "--out", parquet_out, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    table = pq.read_table(parquet_out)
    assert table.schema.equals(PARQUET_SCHEMA)
    rows = [[n, t, i, str(r), f"{s:.6f}"] for n, t, i, r, s in zip(*table.to_pydict().values(), strict=True)]
    assert rows == read_scores(csv_out)


# ------------------------------------------------------------------ formats and headers


@pytest.mark.parametrize(
    ("fmt", "encoding", "chinese"),
    [
        ("csv", "utf-8-sig", False),
        ("csv", "gb18030", False),
        ("jsonl", "utf-8", False),
        ("xlsx", "utf-8", False),
        ("csv", "utf-8", True),
        ("csv", "gb18030", True),
        ("jsonl", "utf-8", True),
        ("xlsx", "utf-8", True),
        ({"needs": "xlsx", "expert": "jsonl", "resource": "csv", "project": "xlsx"}, "utf-8", True),
    ],
    ids=["bom", "gb18030", "jsonl", "xlsx", "zh-csv", "zh-gb18030", "zh-jsonl", "zh-xlsx", "mixed"],
)
def test_every_format_gives_the_same_table(
    tmp_path: Path, baseline: bytes, fmt: str | dict[str, str], encoding: str, chinese: bool
) -> None:
    paths = write_library(tmp_path / "other", fmt, encoding=encoding, chinese=chinese)
    out = tmp_path / "out.csv"
    run_batch(paths["needs"], targets_of(paths), out, k=10)
    assert out.read_bytes() == baseline


def test_title_and_description_make_the_text(tmp_path: Path, library: dict[str, Path]) -> None:
    split = [{"编号": e["id"], "标题": e["name"], "描述": e["text"], "专长": e["tags"]} for e in EXPERTS]
    joined = [{"id": e["id"], "text": f"{e['name']}\n{e['text']}", "tags": e["tags"]} for e in EXPERTS]
    first, second = tmp_path / "split.csv", tmp_path / "joined.csv"
    run_batch(library["needs"], {"expert": write_rows(tmp_path / "split.xlsx", split)}, first)
    run_batch(library["needs"], {"expert": write_rows(tmp_path / "joined.jsonl", joined)}, second)
    assert read_scores(first) and first.read_bytes() == second.read_bytes()


# ---------------------------------------------------------------------------- bad input


def _missing_file(paths: dict[str, Path]) -> tuple[dict[str, Path], str]:
    paths["expert"] = paths["expert"].with_name("missing.csv")
    return paths, f"{paths['expert']}: file not found"


def _missing_column(paths: dict[str, Path]) -> tuple[dict[str, Path], str]:
    write_rows(paths["expert"], [{"id": e["id"], "name": e["name"]} for e in EXPERTS])
    return paths, f"{paths['expert']}: missing column 'text'"


def _empty_text(paths: dict[str, Path]) -> tuple[dict[str, Path], str]:
    write_rows(paths["needs"], [NEEDS[0], {**NEEDS[1], "text": "  "}, NEEDS[2]])
    return paths, f"{paths['needs']}: row 2, column 'text': empty text"


def _duplicate_id(paths: dict[str, Path]) -> tuple[dict[str, Path], str]:
    write_rows(paths["expert"], [*EXPERTS[:2], {**EXPERTS[2], "id": "E01"}])
    return paths, f"{paths['expert']}: row 3, column 'id': duplicate id 'E01' (first in row 1)"


def _undecodable(paths: dict[str, Path]) -> tuple[dict[str, Path], str]:
    paths["needs"].write_bytes("id,text\nN1,养老\n".encode() + b"N2,\xff\xfe bad\n")
    return paths, f"{paths['needs']}: row 2: cannot decode the bytes as UTF-8 or GB18030"


def _unreadable_sheet(paths: dict[str, Path]) -> tuple[dict[str, Path], str]:
    paths["expert"] = paths["expert"].with_suffix(".xlsx")
    paths["expert"].write_bytes(b"PK\x03\x04 this is not a workbook")
    return paths, f"{paths['expert']}: cannot read the Excel file"


def _bad_capacity(paths: dict[str, Path]) -> tuple[dict[str, Path], str]:
    write_rows(paths["expert"], [EXPERTS[0], {**EXPERTS[1], "capacity": "两个"}])
    return paths, f"{paths['expert']}: row 2, column 'capacity': capacity must be a whole number"


BAD_INPUTS = {
    "missing-file": _missing_file,
    "missing-column": _missing_column,
    "empty-text": _empty_text,
    "duplicate-id": _duplicate_id,
    "undecodable": _undecodable,
    "unreadable-sheet": _unreadable_sheet,
    "bad-capacity": _bad_capacity,
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_cli_bad_input_keeps_the_earlier_output(case: str, library: dict[str, Path], tmp_path: Path) -> None:
    paths, message = BAD_INPUTS[case](library)
    out = tmp_path / "out.csv"
    out.write_bytes(b"an earlier run")
    result = run_cli(*cli_args(paths), "--out", out, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"matcher: {message}")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert out.read_bytes() == b"an earlier run"
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_leaves_no_output(case: str, library: dict[str, Path], tmp_path: Path) -> None:
    paths, message = BAD_INPUTS[case](library)
    out = tmp_path / "out.parquet"
    with pytest.raises(TableError) as caught:
        run_batch(paths["needs"], targets_of(paths), out, k=5)
    assert str(caught.value).startswith(message)
    assert not out.exists()
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("k", ["0", "-3", "two"])
def test_cli_bad_k(k: str, library: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    result = run_cli(*cli_args(library), "--k", k, "--out", out, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("matcher: ") and "'--k'" in result.stderr
    assert result.stderr.count("\n") == 1
    assert not out.exists()


@pytest.mark.parametrize("k", [0, -1, 2.5, True])
def test_bad_k(k: Any, library: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    with pytest.raises(BatchError, match="k must be a whole number of 1 or more"):
        run_batch(library["needs"], targets_of(library), out, k=k)
    assert not out.exists()


def test_cli_requires_out(library: dict[str, Path], tmp_path: Path) -> None:
    result = run_cli(*cli_args(library), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == "matcher: --out is required (unless --check is given)\n"


def test_output_path_problems(library: dict[str, Path], tmp_path: Path) -> None:
    targets = targets_of(library)
    with pytest.raises(BatchError, match=r"output folder .* does not exist"):
        run_batch(library["needs"], targets, tmp_path / "nowhere" / "out.csv")
    with pytest.raises(BatchError, match="is a folder"):
        run_batch(library["needs"], targets, tmp_path)
    before = library["expert"].read_bytes()
    with pytest.raises(BatchError, match="also an input file"):
        run_batch(library["needs"], targets, library["expert"])
    assert library["expert"].read_bytes() == before
    with pytest.raises(BatchError, match="rejects file is also the output file"):
        run_batch(library["needs"], targets, tmp_path / "o.csv", skip_invalid=tmp_path / "o.csv")
    assert not (tmp_path / "o.csv").exists()


@pytest.mark.parametrize("name", ["out.csv", "out.parquet"])
def test_failure_while_matching_keeps_the_earlier_output(
    name: str, library: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / name
    out.write_bytes(b"an earlier run")
    calls = []
    original = batch.Matcher.match_columns  # what each chunk calls

    def failing(self: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        calls.append(1)
        if len(calls) == 2:
            raise MemoryError("out of memory")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(batch.Matcher, "match_columns", failing)
    with pytest.raises(MemoryError):
        run_batch(library["needs"], targets_of(library), out, chunks=ChunkOptions(chunk_size=1, workers=1))
    assert out.read_bytes() == b"an earlier run"
    assert leftovers(tmp_path) == []
    fresh = tmp_path / f"fresh-{name}"
    calls.clear()
    with pytest.raises(MemoryError):
        run_batch(library["needs"], targets_of(library), fresh, chunks=ChunkOptions(chunk_size=1, workers=1))
    assert not fresh.exists()
    assert leftovers(tmp_path) == []


# ------------------------------------------------------------------- skip-invalid, check


def test_cli_skip_invalid(library: dict[str, Path], tmp_path: Path) -> None:
    write_rows(library["needs"], [NEEDS[0], {**NEEDS[1], "text": ""}, NEEDS[2]])
    write_rows(
        library["expert"],
        [*EXPERTS, {**EXPERTS[0], "text": "重复的编号"}, {**EXPERTS[1], "id": "E09", "capacity": "-1"}],
    )
    out, rejects = tmp_path / "out.csv", tmp_path / "rejects.csv"
    result = run_cli(*cli_args(library), "--out", out, "--skip-invalid", rejects, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "3 invalid rows skipped" in result.stdout and str(rejects) in result.stdout
    rows = read_scores(out)
    assert {r[0] for r in rows} == {"N3", "N2"}
    assert "E09" not in {r[2] for r in rows}
    with rejects.open(encoding="utf-8-sig", newline="") as handle:
        rejected = list(csv.DictReader(handle))
    assert [(r["file"], r["row"], r["reason"]) for r in rejected] == [
        (str(library["needs"]), "2", "text: empty text"),
        (str(library["expert"]), "6", "id: duplicate id 'E01' (first in row 1)"),
        (str(library["expert"]), "7", "capacity: capacity must be a whole number of 0 or more, not '-1'"),
    ]
    assert rejected[1]["text"] == "重复的编号"


def test_skip_invalid_without_rejects_writes_a_header(
    library: dict[str, Path], tmp_path: Path, baseline: bytes
) -> None:
    out, rejects = tmp_path / "out.csv", tmp_path / "rejects.csv"
    report = run_batch(library["needs"], targets_of(library), out, skip_invalid=rejects)
    assert out.read_bytes() == baseline
    assert report.rejected == 0
    assert rejects.read_text(encoding="utf-8-sig").splitlines()[0].startswith("file,row,")


def test_skip_invalid_keeps_file_errors(library: dict[str, Path], tmp_path: Path) -> None:
    paths, message = _missing_column(library)
    out, rejects = tmp_path / "out.csv", tmp_path / "rejects.csv"
    with pytest.raises(TableError, match=re.escape(message)):
        run_batch(paths["needs"], targets_of(paths), out, skip_invalid=rejects)
    assert not out.exists() and not rejects.exists()


def test_cli_check_valid(library: dict[str, Path], tmp_path: Path) -> None:
    write_rows(library["expert"], EXPERTS, extra={"备注": "内部"})
    out = tmp_path / "out.csv"
    result = run_cli(*cli_args(library), "--check", "--out", out, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"needs: {library['needs']}: 3 valid rows, 0 invalid rows",
        f"experts: {library['expert']}: 5 valid rows, 0 invalid rows",
        "  ignored columns: 备注",
        f"resources: {library['resource']}: 2 valid rows, 0 invalid rows",
        f"projects: {library['project']}: 2 valid rows, 0 invalid rows",
        "all 4 files are valid",
    ]
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_cli_check_invalid(library: dict[str, Path], tmp_path: Path) -> None:
    write_rows(library["needs"], [NEEDS[0], {**NEEDS[1], "text": ""}, {**NEEDS[2], "id": "N3"}])
    library["resource"] = library["resource"].with_name("missing.csv")
    write_rows(library["project"], [{"id": "P1", "name": "无文本"}])
    result = run_cli(*cli_args(library), "--check", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == ""
    assert result.stdout.splitlines() == [
        f"needs: {library['needs']}: 1 valid row, 2 invalid rows",
        f"  {library['needs']}: row 2, column 'text': empty text",
        f"  {library['needs']}: row 3, column 'id': duplicate id 'N3' (first in row 1)",
        f"experts: {library['expert']}: 5 valid rows, 0 invalid rows",
        f"resources: {library['resource']}: cannot be used",
        f"  {library['resource']}: file not found",
        f"projects: {library['project']}: cannot be used",
        f"  {library['project']}: missing column 'text' (also accepted: 'title' and/or 'description', '文本', '标题', '描述')",
        "3 of 4 files have problems",
    ]


def test_check_reports_rows_of_a_file_without_valid_rows(library: dict[str, Path], tmp_path: Path) -> None:
    write_rows(library["needs"], [{**NEEDS[0], "text": ""}, {**NEEDS[1], "id": ""}])
    report = check_inputs(
        library["needs"], targets_of(library), params={"tag_wieght": 0.1}, out=tmp_path / "x" / "o.csv"
    )
    assert not report.ok
    needs = report.files[0]
    assert (needs.valid, needs.invalid) == (0, 2)
    assert needs.problems[0] == f"{library['needs']}: no valid rows: all 2 rows are invalid"
    lines = report.lines()
    assert any("unknown parameter 'tag_wieght'" in line for line in lines)
    assert any("does not exist" in line for line in lines)


def test_check_lists_columns_unused_for_needs(library: dict[str, Path]) -> None:
    write_rows(library["needs"], [{**n, "capacity": 1} for n in NEEDS])
    report = check_inputs(library["needs"], targets_of(library))
    assert report.ok
    assert report.files[0].ignored_columns == ["capacity (not used for needs)"]


# ------------------------------------------------------------------------------ output


@pytest.mark.parametrize("name", ["out.csv", "out.parquet"])
def test_reruns_are_byte_identical(name: str, library: dict[str, Path], tmp_path: Path) -> None:
    first, second = tmp_path / "a" / name, tmp_path / "b" / name
    first.parent.mkdir()
    second.parent.mkdir()
    run_batch(library["needs"], targets_of(library), first, k=3)
    run_batch(library["needs"], targets_of(library), second, k=3)
    assert first.read_bytes() == second.read_bytes()
    run_batch(library["needs"], targets_of(library), first, k=3)  # over an existing file
    assert first.read_bytes() == second.read_bytes()


def test_parquet_schema_and_values(library: dict[str, Path], tmp_path: Path) -> None:
    run_batch(library["needs"], targets_of(library), tmp_path / "out.parquet", k=3)
    run_batch(library["needs"], targets_of(library), tmp_path / "out.csv", k=3)
    table = pq.read_table(tmp_path / "out.parquet")
    assert table.schema.equals(PARQUET_SCHEMA)
    assert table.schema.metadata is None or b"pandas" not in table.schema.metadata
    frame = table.to_pandas()
    assert list(frame.columns) == list(MATCH_COLUMNS)
    expected = read_scores(tmp_path / "out.csv")
    assert [[n, t, i, str(r), f"{s:.6f}"] for n, t, i, r, s in frame.itertuples(index=False)] == expected


def test_write_matches_format(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "need_id": ["N,1", "N2"],
            "target_type": ["expert", "project"],
            "target_id": ['E"1', "P1"],
            "rank": [1, 1],
            "score": [0.5, -0.0],
        }
    )
    out = tmp_path / "out.csv"
    write_matches(frame, out)
    assert out.read_bytes() == (
        b"\xef\xbb\xbf" + HEADER.encode() + b'\n"N,1",expert,"E""1",1,0.500000\nN2,project,P1,1,0.000000\n'
    )
    write_matches(frame, tmp_path / "out.parquet")
    back = pq.read_table(tmp_path / "out.parquet").to_pydict()
    assert back == {
        "need_id": ["N,1", "N2"],
        "target_type": ["expert", "project"],
        "target_id": ['E"1', "P1"],
        "rank": [1, 1],
        "score": [0.5, 0.0],
    }


@pytest.mark.parametrize("name", ["out.csv", "out.parquet"])
def test_no_match_gives_an_empty_table(name: str, tmp_path: Path) -> None:
    needs = write_rows(tmp_path / "needs.csv", [{"id": "N1", "text": "量子物理"}])
    experts = write_rows(tmp_path / "experts.csv", [{"id": "E1", "text": "社区养老"}])
    out = tmp_path / name
    report = run_batch(needs, {"expert": experts}, out)
    assert (report.rows, report.unmatched) == (0, 1)
    if name.endswith(".csv"):
        assert out.read_bytes() == b"\xef\xbb\xbf" + HEADER.encode() + b"\n"
    else:
        table = pq.read_table(out)
        assert table.schema.equals(PARQUET_SCHEMA) and table.num_rows == 0


def test_k_larger_than_the_library(tmp_path: Path) -> None:
    needs = write_rows(tmp_path / "needs.csv", [{"id": "N1", "text": "社区养老服务"}, {"id": "N2", "text": "养老"}])
    experts = write_rows(
        tmp_path / "experts.csv",
        [{"id": "E1", "text": "社区养老"}, {"id": "E2", "text": "居家养老服务"}, {"id": "E3", "text": "儿童保护"}],
    )
    out = tmp_path / "out.csv"
    report = run_batch(needs, {"expert": experts}, out, k=10_000)
    rows = read_scores(out)
    assert [(n, i, r) for n, _, i, r, _ in rows] == [
        ("N1", "E1", "1"),
        ("N1", "E2", "2"),
        ("N2", "E1", "1"),
        ("N2", "E2", "2"),
    ]
    assert report.rows == 4  # E3 shares nothing: no padding


def test_single_target_library(tmp_path: Path) -> None:
    needs = write_rows(tmp_path / "needs.csv", [{"id": "N1", "text": "需要养老服务督导"}, {"id": "N2", "text": "儿童"}])
    experts = write_rows(tmp_path / "experts.jsonl", [{"id": "E1", "text": "养老服务督导"}])
    out = tmp_path / "out.csv"
    report = run_batch(needs, {"expert": experts}, out, k=5)
    assert report.targets == {"expert": 1}
    rows = read_scores(out)
    assert [r[:4] for r in rows] == [["N1", "expert", "E1", "1"]]
    assert report.summary() == f"wrote 1 row for 2 needs (1 expert) to {out}; 1 need without any match"


def test_long_texts(tmp_path: Path) -> None:
    assert len(LONG_TEXT) >= 30_000
    needs = write_rows(tmp_path / "needs.csv", [{"id": "N1", "text": LONG_TEXT}, {"id": "N2", "text": "养老服务"}])
    experts = write_rows(
        tmp_path / "experts.xlsx", [{"id": "E1", "text": LONG_TEXT}, {"id": "E2", "text": "儿童保护与家庭服务"}]
    )
    out = tmp_path / "out.parquet"
    run_batch(needs, {"expert": experts}, out, k=5)
    frame = pq.read_table(out).to_pandas()
    first = frame.loc[frame["need_id"] == "N1"].iloc[0]
    assert first["target_id"] == "E1" and first["score"] > 0.7
    model = build_matcher().fit(frames.table_targets_frame({"expert": read_table(experts)}))
    [best] = model.recommend({"text": LONG_TEXT}, k=1)["expert"]
    assert (best["id"], best["score"]) == ("E1", first["score"])


# --------------------------------------------------------------------------- hard rules


def test_hard_rules_apply_only_where_columns_are_present(tmp_path: Path) -> None:
    text = "个案管理督导与转介流程"
    need = {"id": "N1", "text": "需要个案管理督导", "org_id": "O1"}
    full = [
        {"id": "E1", "text": text, "org_id": "", "capacity": 0, "available": ""},
        {"id": "E2", "text": text, "org_id": "", "capacity": "", "available": "否"},
        {"id": "E3", "text": text, "org_id": "O1", "capacity": "", "available": ""},
        {"id": "E4", "text": text, "org_id": "O2", "capacity": 1, "available": "是"},
    ]
    needs = write_rows(tmp_path / "needs.csv", [need])
    experts = write_rows(tmp_path / "experts.csv", full)
    out = tmp_path / "out.csv"
    run_batch(needs, {"expert": experts}, out)
    assert [r[2] for r in read_scores(out)] == ["E4"]

    # without the capacity, available and org_id columns no target is excluded
    bare = write_rows(tmp_path / "bare.csv", [{"id": e["id"], "text": e["text"]} for e in full])
    run_batch(needs, {"expert": bare}, out)
    assert [r[2] for r in read_scores(out)] == ["E1", "E2", "E3", "E4"]

    # the organisation rule needs an org_id on both sides
    no_org = write_rows(tmp_path / "needs-no-org.csv", [{"id": "N1", "text": need["text"]}])
    run_batch(no_org, {"expert": experts}, out)
    assert [r[2] for r in read_scores(out)] == ["E3", "E4"]


# --------------------------------------------------------------------------- parameters


def test_params_change_the_scores(library: dict[str, Path], tmp_path: Path, baseline: bytes) -> None:
    out = tmp_path / "out.csv"
    run_batch(library["needs"], targets_of(library), out, params={"tag_weight": 0.0})
    assert out.read_bytes() != baseline
    default = {(r[0], r[2]): float(r[4]) for r in read_scores(tmp_path / "baseline.csv")}
    changed = {(r[0], r[2]): float(r[4]) for r in read_scores(out)}
    assert changed[("N3", "E01")] < default[("N3", "E01")]  # the shared tag no longer counts
    run_batch(library["needs"], targets_of(library), out, params={"tag_weight": 0.2, "vectorizer__char_weight": 3.0})
    assert out.read_bytes() == baseline  # the defaults, spelled out


def test_cli_params_file(library: dict[str, Path], tmp_path: Path, baseline: bytes) -> None:
    params, out = tmp_path / "params.json", tmp_path / "out.csv"
    params.write_text('{"tag_weight": 0.0}', encoding="utf-8")
    result = run_cli(*cli_args(library), "--params", params, "--out", out, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() != baseline


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"tag_wieght": 0.1}, "unknown parameter 'tag_wieght'"),
        ({"tag_weight": "heavy"}, "'tag_weight' must be a number"),
        ({"tag_weight": 0.99}, "tag_weight and region_weight must be"),
        ({"vectorizer__char_ngram_range": [1]}, "'vectorizer__char_ngram_range' must be a list of 2 whole numbers"),
        ({"vectorizer__tokenizer": "jieba"}, "'vectorizer__tokenizer' cannot be set in a parameters file"),
        ({"aggregation": "mean"}, "aggregation must be one of"),
    ],
)
def test_bad_params(params: dict[str, Any], message: str, library: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    with pytest.raises(BatchError, match=re.escape(message)):
        run_batch(library["needs"], targets_of(library), out, params=params)
    assert not out.exists()


def test_cli_bad_params(library: dict[str, Path], tmp_path: Path) -> None:
    params, out = tmp_path / "params.json", tmp_path / "out.csv"
    params.write_text('{"region_wieght": 0.1}', encoding="utf-8")
    result = run_cli(*cli_args(library), "--params", params, "--out", out, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("matcher: parameters: unknown parameter 'region_wieght'")
    assert result.stderr.count("\n") == 1
    params.write_text("[1, 2]", encoding="utf-8")
    result = run_cli(*cli_args(library), "--params", params, "--out", out, cwd=tmp_path)
    assert result.returncode == 2 and "--params" in result.stderr
    assert not out.exists()


# ------------------------------------------------------------- the same scores as the API


def _fitted(paths: dict[str, Path]) -> Any:
    tables = {t: read_table(p) for t, p in targets_of(paths).items()}
    return build_matcher().fit(frames.table_targets_frame(tables))


def _rows_by_need(path: Path) -> dict[str, dict[str, list[tuple[str, float]]]]:
    frame = pq.read_table(path).to_pandas()
    result: dict[str, dict[str, list[tuple[str, float]]]] = {}
    for need_id, target_type, target_id, _, score in frame.itertuples(index=False):
        result.setdefault(need_id, {}).setdefault(target_type, []).append((target_id, score))
    return result


def test_rows_equal_recommend(library: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out.parquet"
    run_batch(library["needs"], targets_of(library), out, k=4)
    rows = _rows_by_need(out)
    model = _fitted(library)
    needs = frames.table_needs_frame(read_table(library["needs"]))
    for need in needs.to_dict("records"):
        expected = {
            target_type: [(r["id"], r["score"]) for r in results]
            for target_type, results in model.recommend(need, k=4).items()
            if results
        }
        assert rows.get(need["id"], {}) == expected


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def _target_files(targets: pd.DataFrame, folder: Path) -> dict[str, Path]:
    """The service's targets as batch files, one JSONL per type, with what the service sees of each."""
    files = {}
    for target_type in ("expert", "resource", "project"):
        rows = targets[targets["target_type"] == target_type]
        files[target_type] = _jsonl(
            folder / f"{target_type}.jsonl",
            [
                {
                    "id": row.id,
                    "name": row.name,  # names are a field of the score
                    "text": "\n".join(t for t in row.texts if t),
                    "tags": list(row.tags),
                    "counties": list(row.counties),
                    **({"org_id": row.org_id} if row.org_id else {}),
                    **({} if pd.isna(row.capacity) else {"capacity": int(row.capacity) - int(row.load)}),
                    "available": bool(row.available),
                }
                for row in rows.itertuples()
            ],
        )
    return files


def test_rows_equal_the_http_api(trained, client, tmp_path: Path) -> None:
    """The service's own libraries, exported as batch files, give the rows the HTTP path returns."""
    from matcher.inputs.frames import needs_frame as stored_needs
    from matcher.inputs.frames import targets_frame as stored_targets
    from matcher.jobs.training import stored_libraries

    libs = stored_libraries(trained["database"], trained["data"])
    files = _target_files(stored_targets(libs), tmp_path)
    needs = stored_needs(libs).head(12)
    needs_file = _jsonl(tmp_path / "needs.jsonl", needs.to_dict("records"))
    out = tmp_path / "out.parquet"
    run_batch(needs_file, files, out, k=5)
    rows = _rows_by_need(out)
    for need_id in needs["id"]:
        response = client.post("/v1/match", json={"need_id": need_id, "k": 5})
        assert response.status_code == 200, response.get_json()
        expected = {
            target_type: [(r["id"], r["score"]) for r in results]
            for target_type, results in response.get_json()["results"].items()
            if results
        }
        assert rows.get(need_id, {}) == expected


def test_free_text_rows_equal_the_http_api(trained, client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Needs without tags (typed free text) get the same inferred tags, so the same rows, in batch and HTTP."""
    from matcher.inputs.frames import needs_frame as stored_needs
    from matcher.inputs.frames import targets_frame as stored_targets
    from matcher.jobs.training import stored_libraries

    monkeypatch.setenv("MATCHER_DATA_DIR", str(trained["data"]))
    libs = stored_libraries(trained["database"], trained["data"])
    files = _target_files(stored_targets(libs), tmp_path)
    typed = ["我们机构刚成立，分不清个案工作和个案管理，想请专家指导转介流程", "心语小屋", "留守儿童心理辅导怎么做"]
    stored = stored_needs(libs).to_dict("records")  # the tagged needs the tag classifier learns from, as in train
    needs_file = _jsonl(
        tmp_path / "needs.jsonl", [*stored, *({"id": f"T{i}", "text": text} for i, text in enumerate(typed))]
    )
    out = tmp_path / "out.parquet"
    run_batch(needs_file, files, out, k=5)
    rows = _rows_by_need(out)
    for number, text in enumerate(typed):
        response = client.post("/v1/match", json={"text": text, "k": 5})
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        assert body["need"]["inferred_tags"] is not None
        assert body["need"]["tags"] == [t["tag"] for t in body["need"]["inferred_tags"]]
        expected = {t: [(r["id"], r["score"]) for r in results] for t, results in body["results"].items() if results}
        assert rows.get(f"T{number}", {}) == expected
    assert client.post("/v1/match", json={"text": typed[0], "tags": []}).get_json()["need"].get("inferred_tags") is None


def test_progress_bar_only_when_asked(library: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run_batch(library["needs"], targets_of(library), tmp_path / "a.csv")
    assert capsys.readouterr().err == ""  # stderr is not a terminal here
    run_batch(
        library["needs"], targets_of(library), tmp_path / "b.csv", chunks=ChunkOptions(chunk_size=1, progress=True)
    )
    assert "matching" in capsys.readouterr().err
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
