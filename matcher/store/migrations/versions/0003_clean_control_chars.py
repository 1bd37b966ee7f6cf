"""clean control characters already stored in library texts

Texts typed before the one validation of text fields (``matcher.store.records.clean_text``) may hold
control characters (``李\\x01四``) that worksheets and PostgreSQL cannot hold. This migration applies
the rule to what is stored: CRLF and lone CR become LF, other C0 controls and DEL are removed, in
every text and list column of the libraries. Ids are left as they are (other rows refer to them).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

import re

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

# table -> (text columns, JSON list columns)
_COLUMNS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "tags": (("label", "label_en", "description"), ("keywords",)),
    "organisations": (("name", "county", "township"), ()),
    "needs": (("title", "description"), ("tags",)),
    "experts": (("name", "affiliation", "title", "bio", "phone", "email"), ("specialties", "counties", "courses")),
    "resources": (("name", "description", "provider", "county"), ("tags",)),
    "projects": (("name", "description", "outcomes"), ("tags",)),
    "decisions": (("comment", "model_version"), ()),
}


def _clean(value: object) -> object:
    if not isinstance(value, str):
        return value
    return _CONTROL.sub("", value.replace("\r\n", "\n").replace("\r", "\n"))


def _clean_list(value: object) -> object:
    if not isinstance(value, list):
        return value
    return [item for item in (_clean(v) for v in value) if not isinstance(item, str) or item.strip()]


def upgrade() -> None:
    bind = op.get_bind()
    for name, (texts, lists) in _COLUMNS.items():
        key = "code" if name == "tags" else "id"
        table = sa.table(
            name,
            sa.column(key, sa.String()),
            *(sa.column(c, sa.Text()) for c in texts),
            *(sa.column(c, sa.JSON()) for c in lists),
        )
        for row in bind.execute(sa.select(table)).mappings():
            changed = {c: _clean(row[c]) for c in texts if _clean(row[c]) != row[c]}
            for column in lists:
                cleaned = _clean_list(row[column])
                if cleaned != row[column]:
                    changed[column] = cleaned
            if changed:
                bind.execute(sa.update(table).where(table.c[key] == row[key]).values(**changed))


def downgrade() -> None:
    """Nothing to undo: the removed characters were never valid."""
