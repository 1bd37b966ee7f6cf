"""The one grade function and the graded labels of held events (never decisions)."""

from __future__ import annotations

import pandas as pd
import pytest

from matcher.matching.grades import LABEL_COLUMNS, event_labels, grade


@pytest.mark.parametrize(
    ("kind", "value", "rating", "expected"),
    [
        ("decision", "rejected", None, 0),
        ("decision", "cancelled", None, None),  # no label
        ("decision", "accepted", None, 2),
        ("decision", "completed", None, 3),
        ("decision", "completed", 5, 4),
        ("decision", "completed", 2, 1),
        ("attendance", "attended", 5, 4),
        ("attendance", "attended", 4, 3),
        ("attendance", "attended", 3, 2),
        ("attendance", "attended", 2, 1),
        ("attendance", "attended", 1, 0),
        ("attendance", "attended", None, 2),
        ("attendance", "absent", None, 1),
    ],
)
def test_the_grade_table(kind, value, rating, expected) -> None:
    assert grade(kind, value, rating=rating) == expected


@pytest.mark.parametrize(
    ("kind", "value", "rating"),
    [("decision", "maybe", None), ("attendance", "invited", None), ("attendance", "attended", 6), ("vote", "x", None)],
)
def test_what_is_not_evidence_is_refused(kind, value, rating) -> None:
    with pytest.raises(ValueError):
        grade(kind, value, rating=rating)


def test_labels_come_from_held_events_only_for_each_expert() -> None:
    at = pd.Timestamp("2026-03-05T01:00Z")
    events = pd.DataFrame(
        {
            "id": ["V1", "V2"],
            "expert_ids": [["E1", "E2"], ["E3"]],
            "status": ["held", "confirmed"],
            "starts_at": [at, at],
        }
    )
    attendees = pd.DataFrame(
        {
            "event_id": ["V1", "V1", "V1", "V2"],
            "org_id": ["O1", "O2", "O3", "O4"],
            "need_id": ["N1", None, "N3", "N4"],
            "status": ["attended", "attended", "absent", "confirmed"],
            "rating": [5, None, None, None],
        }
    )
    labels = event_labels(events, attendees)
    assert tuple(labels.columns) == LABEL_COLUMNS
    got = {(r.need_id, r.org_id, r.target_id, r.grade) for r in labels.itertuples()}
    assert got == {
        ("N1", "O1", "E1", 4),
        ("N1", "O1", "E2", 4),
        ("", "O2", "E1", 2),  # no stored need: a label about the organisation
        ("", "O2", "E2", 2),
        ("N3", "O3", "E1", 1),
        ("N3", "O3", "E2", 1),
    }


def test_labels_of_the_database_are_not_decisions(tmp_path) -> None:
    from sqlalchemy import func, select

    from matcher.store import kinds, seed, transactions
    from matcher.store.labels import event_labels_db
    from matcher.store.schema import Decision
    from tests.conftest import ROOT

    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    seed.ensure_database(url, ROOT / "data")
    with transactions.transaction(url) as session:
        decisions = session.scalar(select(func.count()).select_from(Decision))
        labels = event_labels_db(session)
        assert session.scalar(select(func.count()).select_from(Decision)) == decisions
    assert set(labels["grade"]) <= {0, 1, 2, 3, 4}
    # the sample history of events (data/events.csv, data/attendees.csv) is seeded and gives labels
    events = pd.read_csv(ROOT / "data" / "events.csv", dtype=str, keep_default_na=False)
    with transactions.transaction(url) as session:
        assert kinds.counts(session)["events"] == len(events)
    held = set(events.loc[events["status"] == "held", "id"])
    assert len(labels) > 100 and set(labels["event_id"]) <= held
