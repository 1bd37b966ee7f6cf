"""Library statistics on a tiny hand-made library with known counts."""

from __future__ import annotations

import pandas as pd
import pytest

from matcher.inputs.library import Libraries
from matcher.quality.supply import coverage, needs_by


@pytest.fixture
def libs() -> Libraries:
    frame = pd.DataFrame
    return Libraries(
        taxonomy=frame({"label": ["个案管理", "小组工作", "养老服务"]}),
        organisations=frame({"id": ["O1", "O2"], "county": ["雄县", "安新县"], "stage": ["初创期", "成熟期"]}),
        needs=frame(
            {
                "id": ["N1", "N2", "N3"],
                "org_id": ["O1", "O1", "O2"],
                "status": ["open", "open", "closed"],
                "urgency": ["high", "low", "low"],
                "tags": [["个案管理", "小组工作"], ["个案管理"], ["养老服务"]],
            }
        ),
        experts=frame(
            {
                "id": ["E1", "E2", "E3"],
                "specialties": [["个案管理"], ["个案管理", "养老服务"], ["小组工作"]],
                "capacity": [2, 1, 3],
                "available": [True, True, False],
            }
        ),
        resources=frame({"id": ["R1"], "tags": [["个案管理"]]}),
        projects=frame({"id": ["P1", "P2"], "tags": [["养老服务"], ["养老服务"]]}),
        decisions=frame(
            {
                "id": ["D1"],
                "need_id": ["N1"],
                "target_type": ["expert"],
                "target_id": ["E1"],
                "decision": ["accepted"],
                "decided_at": [pd.Timestamp("2025-01-01", tz="UTC")],
            }
        ),
    )


def test_needs_by_each_dimension(libs) -> None:
    assert needs_by(libs, "category").to_dict() == {"个案管理": 2, "养老服务": 1, "小组工作": 1}
    assert needs_by(libs, "county").to_dict() == {"雄县": 2, "安新县": 1}
    assert needs_by(libs, "stage", status="open").to_dict() == {"初创期": 2}
    assert needs_by(libs, "status").to_dict() == {"open": 2, "closed": 1}
    with pytest.raises(ValueError, match="by must be one of"):
        needs_by(libs, "colour")


def test_coverage(libs) -> None:
    table = coverage(libs)
    assert table.index.tolist() == ["个案管理", "小组工作", "养老服务"]
    assert table.loc["个案管理"].to_dict() == {
        "open_needs": 2,
        "experts": 2,
        "free_places": 2,
        "resources": 1,
        "projects": 0,
        "places_per_need": 1.0,
    }  # E1 has 1 of 2 places taken by N1's open engagement; E2 has 1
    assert table.loc["小组工作", "experts"] == 0  # E3 is unavailable
    assert table.loc["养老服务", "open_needs"] == 0 and pd.isna(table.loc["养老服务", "places_per_need"])
