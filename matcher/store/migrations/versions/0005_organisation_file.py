"""the organisation file (stage history, incubation plan, status and staff), outcomes, funds

Organisations gain ``kind``, ``status`` (existing rows: resident agencies), ``admitted_on``,
``left_on`` and ``licensed_social_workers``; resources gain ``amount_yuan`` (funding); engagements
gain ``closed_decision_id`` (the decision that completed or cancelled them, filled in for the
engagements already closed); new tables ``stages``, ``milestones`` and ``outcomes``.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("organisations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kind", sa.String(length=16), nullable=False, server_default="agency"))
        batch_op.add_column(sa.Column("status", sa.String(length=16), nullable=False, server_default="resident"))
        batch_op.add_column(sa.Column("admitted_on", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("left_on", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("licensed_social_workers", sa.Integer(), nullable=True))
    with op.batch_alter_table("resources", schema=None) as batch_op:
        batch_op.add_column(sa.Column("amount_yuan", sa.Integer(), nullable=True))
    with op.batch_alter_table("engagements", schema=None) as batch_op:
        batch_op.add_column(sa.Column("closed_decision_id", sa.String(length=64), nullable=True))
        batch_op.create_foreign_key(
            "fk_engagements_closed_decision_id_decisions", "decisions", ["closed_decision_id"], ["id"]
        )
    # engagements closed before this revision: the decision of the same pair, kind and time closed them
    op.execute(
        sa.text(
            "UPDATE engagements SET closed_decision_id = ("
            " SELECT MIN(d.id) FROM decisions d WHERE d.need_id = engagements.need_id"
            " AND d.target_type = engagements.target_type AND d.target_id = engagements.target_id"
            " AND d.decision = engagements.status AND d.decided_at = engagements.closed_at)"
            " WHERE status IN ('completed', 'cancelled')"
        )
    )

    op.create_table(
        "stages",
        sa.Column("org_id", sa.String(length=64), nullable=False),
        sa.Column("stage", sa.String(length=16), nullable=False),
        sa.Column("since", sa.Date(), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["org_id"], ["organisations.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("stages", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_stages_org_id"), ["org_id"], unique=False)

    op.create_table(
        "milestones",
        sa.Column("org_id", sa.String(length=64), nullable=False),
        sa.Column("stage", sa.String(length=16), nullable=False),
        sa.Column("goal", sa.String(length=200), nullable=False),
        sa.Column("milestone", sa.String(length=200), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["org_id"], ["organisations.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("milestones", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_milestones_org_id"), ["org_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_milestones_due_on"), ["due_on"], unique=False)

    op.create_table(
        "outcomes",
        sa.Column("decision_id", sa.String(length=64), nullable=False),
        sa.Column("engagement_id", sa.Integer(), nullable=True),
        sa.Column("goal_met", sa.String(length=8), nullable=False),
        sa.Column("rating", sa.Integer(), nullable=False),
        sa.Column("hours", sa.Float(), nullable=True),
        sa.Column("changed", sa.Text(), nullable=False),
        sa.Column("follow_up_on", sa.Date(), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["decision_id"], ["decisions.id"]),
        sa.ForeignKeyConstraint(["engagement_id"], ["engagements.id"]),
        sa.PrimaryKeyConstraint("decision_id"),
        sa.UniqueConstraint("engagement_id"),
    )


def downgrade() -> None:
    op.drop_table("outcomes")
    with op.batch_alter_table("milestones", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_milestones_due_on"))
        batch_op.drop_index(batch_op.f("ix_milestones_org_id"))
    op.drop_table("milestones")
    with op.batch_alter_table("stages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_stages_org_id"))
    op.drop_table("stages")
    with op.batch_alter_table("engagements", schema=None) as batch_op:
        batch_op.drop_constraint("fk_engagements_closed_decision_id_decisions", type_="foreignkey")
        batch_op.drop_column("closed_decision_id")
    with op.batch_alter_table("resources", schema=None) as batch_op:
        batch_op.drop_column("amount_yuan")
    with op.batch_alter_table("organisations", schema=None) as batch_op:
        batch_op.drop_column("licensed_social_workers")
        batch_op.drop_column("left_on")
        batch_op.drop_column("admitted_on")
        batch_op.drop_column("status")
        batch_op.drop_column("kind")
