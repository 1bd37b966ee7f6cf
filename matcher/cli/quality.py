"""``matcher evaluate``, ``gaps``, ``tune`` and ``labels``: measure and improve match quality."""

from __future__ import annotations

import json
from pathlib import Path

import click

from matcher.cli import read_params
from matcher.cli.library import store_url
from matcher.matching.rank import WEAK_SCORE


@click.command()
@click.option(
    "--out",
    "out_dir",
    default="reports",
    show_default=True,
    type=click.Path(path_type=Path),
    help="Folder for evaluation.csv and ndcg_at_k.png.",
)
@click.option("--params", "params_file", type=click.Path(path_type=Path), help="JSON object of model parameters.")
@click.option(
    "--bench",
    "bench_dir",
    type=click.Path(path_type=Path),
    help="Also evaluate on a benchmark folder in the format of ../shared/bench/zh.",
)
@click.option("--bench-needs", type=click.IntRange(min=10), help="Use this many of the benchmark's needs (seeded).")
@click.option(
    "--test-share",
    default=0.25,
    show_default=True,
    type=click.FloatRange(0.05, 0.9),
    help="Latest share of the decisions held out for testing.",
)
@click.option("--resamples", default=1000, show_default=True, type=click.IntRange(min=10), help="Bootstrap resamples.")
def evaluate(
    out_dir: Path,
    params_file: Path | None,
    bench_dir: Path | None,
    bench_needs: int | None,
    test_share: float,
    resamples: int,
) -> None:
    """Measure match quality on the later decisions (and a benchmark); write a CSV table and a PNG."""
    from matcher.jobs.training import stored_libraries
    from matcher.quality.benchmark import evaluate_bench, load_bench
    from matcher.quality.history import evaluate_history
    from matcher.quality.known_item import evaluate_known_items
    from matcher.quality.plots import plot_ndcg
    from matcher.quality.results import write_results

    params = read_params(params_file)
    out_dir.mkdir(parents=True, exist_ok=True)
    libs = stored_libraries()
    rows = evaluate_history(libs, params, test_share=test_share, n_resamples=resamples).rows
    rows += evaluate_known_items(libs, params, n_resamples=resamples)
    if bench_dir is not None:
        bench = load_bench(bench_dir)
        if bench_needs:
            bench = bench.subset(bench_needs)
        rows += evaluate_bench(bench, params, n_resamples=resamples)[0]
    write_results(rows, out_dir / "evaluation.csv")
    plot_ndcg(rows, out_dir / "ndcg_at_k.png")
    shown = [
        row
        for row in rows
        if (row["metric"] in ("nDCG", "nDCG gain") and row["k"] in (5, 10)) or row["metric"] in ("PAIR", "PAIR gain")
    ]
    width = max((len(row["method"]) for row in shown), default=22)
    for row in shown:
        k = f"@{row['k']}" if row["k"] != "" else ""
        click.echo(
            f"{row['dataset']:8} {row['method']:{width}} {row['metric']}{k:4} {row['value']:.4f} "
            f"[{row['ci_low']:.4f}, {row['ci_high']:.4f}] n={row['n']}"
        )
    click.echo(f"wrote {out_dir / 'evaluation.csv'} and {out_dir / 'ndcg_at_k.png'}")


@click.command()
@click.option(
    "--out",
    "out_dir",
    default="reports",
    show_default=True,
    type=click.Path(path_type=Path),
    help="Folder for gaps.csv, gaps_by_category_county.csv and gaps.png.",
)
@click.option(
    "--threshold",
    default=WEAK_SCORE,
    show_default=True,
    type=float,
    help="A need whose best weighted-sum score is below this is weakly matched.",
)
@click.option(
    "--targets",
    "target_type",
    default="expert",
    show_default=True,
    type=click.Choice(["expert", "resource", "project"]),
)
@click.option(
    "--status", default=None, type=click.Choice(["open", "matched", "closed"]), help="Only needs of this status."
)
def gaps(out_dir: Path, threshold: float, target_type: str, status: str | None) -> None:
    """Needs whose best match is weak, by category and county: whom the base should recruit."""
    from matcher.documents.writer import write_frame_csv
    from matcher.jobs.sources import load_active
    from matcher.quality.gaps import find_gaps
    from matcher.quality.plots import plot_gaps

    sources = load_active()
    model, libs = sources.model, sources.libraries
    needs, summary = find_gaps(model, libs, target_type=target_type, threshold=threshold, status=status)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_frame_csv(needs, out_dir / "gaps.csv")
    write_frame_csv(summary, out_dir / "gaps_by_category_county.csv")
    plot_gaps(summary, out_dir / "gaps.png")
    click.echo(f"{int(needs['weak'].sum())} of {len(needs)} needs have no {target_type} scoring {threshold} or more")
    for row in summary.head(8).itertuples(index=False):
        click.echo(f"  {row.dimension:8} {row.value:10} weak {row.weak}/{row.needs}")
    click.echo(f"wrote {out_dir / 'gaps.csv'}, {out_dir / 'gaps_by_category_county.csv'} and {out_dir / 'gaps.png'}")


@click.command()
@click.option(
    "--bench",
    "bench_dir",
    required=True,
    type=click.Path(path_type=Path),
    help="A benchmark folder in the format of ../shared/bench/zh (tuned on, never copied).",
)
@click.option(
    "--out",
    "out_dir",
    default="reports",
    show_default=True,
    type=click.Path(path_type=Path),
    help="Folder for best_params.json and tune_results.csv.",
)
@click.option("--grid", "grid_file", type=click.Path(path_type=Path), help="JSON object: parameter -> list of values.")
@click.option("--folds", default=5, show_default=True, type=click.IntRange(2, 20))
@click.option("--bench-needs", type=click.IntRange(min=10), help="Tune on this many of the benchmark's needs (seeded).")
@click.option("--depth", default=100, show_default=True, type=click.IntRange(10, 1000), help="Candidates per need.")
def tune(
    out_dir: Path, bench_dir: Path, grid_file: Path | None, folds: int, bench_needs: int | None, depth: int
) -> None:
    """Grid-search vectoriser, fusion and re-ranker parameters by cross-validated nDCG@10."""
    from matcher.documents.writer import write_frame_csv
    from matcher.quality import tune as tuning
    from matcher.quality.benchmark import load_bench

    grid = read_params(grid_file) if grid_file else None
    bench = load_bench(bench_dir)
    if bench_needs:
        bench = bench.subset(bench_needs)
    best, table = tuning.tune(bench, grid, n_splits=folds, depth=depth)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "best_params.json").write_text(json.dumps(best, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    write_frame_csv(table, out_dir / "tune_results.csv")
    click.echo(f"best mean nDCG@10 {table['mean_test_score'].iloc[0]:.4f}: {table['params'].iloc[0]}")
    click.echo(f"wrote {out_dir / 'best_params.json'} and {out_dir / 'tune_results.csv'}")


@click.command()
@click.option("--out", required=True, type=click.Path(path_type=Path), help="The judgments file (.csv or .xlsx).")
@click.option(
    "--sources",
    default="follow_up,attendance",
    show_default=True,
    help="Comma-separated: follow_up (engagements' outcomes), attendance (held events).",
)
def labels(out: Path, sources: str) -> None:
    """Derived labels of the database as a judgments file for ``matcher train --judgments``.

    One row per (need, target) with its best grade (matcher.matching.grades): outcomes of completed engagements
    (completed with the goal met 4, partly 3, not met 1) and attendance at held events. They are never
    written as decisions.
    """
    from matcher.documents.writer import write_table
    from matcher.matching import grades
    from matcher.store import labels as stored_labels
    from matcher.store.transactions import transaction

    wanted = [s.strip() for s in sources.replace("，", ",").split(",") if s.strip()]
    unknown = sorted(set(wanted) - {"follow_up", "attendance"})
    if unknown or not wanted:
        raise click.UsageError(f"--sources: use follow_up and/or attendance, not {', '.join(unknown) or 'nothing'}")
    if out.suffix.lower() not in (".csv", ".xlsx"):
        raise click.UsageError(f"--out {out}: use a .csv or .xlsx file name")
    with transaction(store_url()) as session:
        frames = []
        if "follow_up" in wanted:
            frames.append(stored_labels.outcome_labels_db(session))
        if "attendance" in wanted:
            frames.append(stored_labels.event_labels_db(session))
    rows = grades.judgment_rows(frames)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_table(rows, grades.JUDGMENT_COLUMNS, out, sheet="judgments")
    click.echo(f"wrote {len(rows)} judged pairs ({', '.join(wanted)}) to {out}")
