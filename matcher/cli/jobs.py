"""``matcher batch`` and ``matcher assign``: score every need, and assign experts within capacity."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from matcher.cli import EXIT_USAGE, read_params
from matcher.errors import MatcherError


@click.command()
@click.option(
    "--needs",
    "needs_file",
    type=click.Path(path_type=Path),
    help="Needs file (CSV, JSONL or XLSX). Without it: the database's open needs, with the active model.",
)
@click.option("--experts", type=click.Path(path_type=Path), help="Experts file (required with --needs).")
@click.option("--resources", type=click.Path(path_type=Path), help="Resources file.")
@click.option("--projects", type=click.Path(path_type=Path), help="Projects file.")
@click.option("--k", default=10, show_default=True, type=click.IntRange(min=1), help="Rows per need and target type.")
@click.option("--params", "params_file", type=click.Path(path_type=Path), help="JSON object of model parameters.")
@click.option("--out", type=click.Path(path_type=Path), help="Score table: .csv, or .parquet for Parquet.")
@click.option("--check", is_flag=True, help="Only validate the inputs and report; write nothing.")
@click.option(
    "--skip-invalid",
    "rejects_file",
    metavar="REJECTS.csv",
    type=click.Path(path_type=Path),
    help="Skip invalid rows, listing them in this CSV file.",
)
@click.option("--resume", is_flag=True, help="Reuse the chunks an interrupted run left in OUT.parts/.")
@click.option(
    "--chunk-size", default=500, show_default=True, type=click.IntRange(min=1), help="Needs scored at a time, at most."
)
@click.option(
    "--engine",
    type=click.Choice(["local", "dask"]),
    default="local",
    show_default=True,
    help="Where chunks run: local processes, or a Dask cluster.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    help="Local worker processes, for the fit and the scoring.  [default: the usable cores]",
)
@click.option("--scheduler", metavar="ADDRESS", help="The Dask scheduler (with --engine dask), e.g. tcp://host:8786.")
@click.option(
    "--fit-sample",
    type=click.IntRange(min=1),
    help="Learn the vocabulary from this many targets (a seeded sample); bounds memory on huge libraries.",
)
@click.option(
    "--model",
    "model_dir",
    type=click.Path(path_type=Path),
    help="Score with this model version folder (no refit); target files, if given, replace its targets.",
)
def batch(
    needs_file: Path | None,
    experts: Path | None,
    resources: Path | None,
    projects: Path | None,
    k: int,
    params_file: Path | None,
    out: Path | None,
    check: bool,
    rejects_file: Path | None,
    resume: bool,
    chunk_size: int,
    engine: str,
    workers: int | None,
    scheduler: str | None,
    fit_sample: int | None,
    model_dir: Path | None,
) -> None:
    """Score every need against the experts, resources and projects; write the score table.

    With --needs, the matcher is fitted on the target files given, or, with --model, the saved version
    scores them (against its own targets, or the target files given, with its fitted vocabulary).
    Without --needs, every open need of the database is matched with the active model, as the HTTP
    API matches it.
    """
    from matcher.jobs.batch import check_inputs, run_batch, run_batch_db, run_batch_model
    from matcher.jobs.chunks import ChunkOptions

    run = {"resume": resume, "chunk_size": chunk_size, "engine": engine, "workers": workers, "scheduler": scheduler}
    if model_dir is not None:
        if needs_file is None:
            raise click.UsageError("--model goes with --needs: the database's open needs are matched by the active model")
        refused = [n for n, v in (("--params", params_file), ("--fit-sample", fit_sample)) if v is not None]
        refused += ["--check"] if check else []
        refused += ["--skip-invalid"] if rejects_file is not None else []
        if refused:
            raise click.UsageError(f"{refused[0]} does not go with --model: the version's parameters and vocabulary are fixed")
        if out is None:
            raise click.UsageError("--out is required")
        files = {"expert": experts, "resource": resources, "project": projects}
        targets = {t: p for t, p in files.items() if p is not None}
        chunks = ChunkOptions(progress=False, **run)
        click.echo(run_batch_model(model_dir, needs_file, targets, out, k=k, chunks=chunks).summary())
        return
    if needs_file is None:
        given = {"--experts": experts, "--resources": resources, "--projects": projects}
        given.update({"--params": params_file, "--skip-invalid": rejects_file, "--fit-sample": fit_sample})
        refused = [name for name, value in given.items() if value is not None]
        if refused:
            raise click.UsageError(
                f"{', '.join(refused)} go{'es' if len(refused) == 1 else ''} with --needs: without --needs, "
                "batch matches the database's open needs with the active model"
            )
        if check:
            _batch_check_database(out)
            return
        if out is None:
            raise click.UsageError("--out is required (unless --check is given)")
        from matcher.inputs.library import data_dir

        click.echo(run_batch_db(out, k=k, data_dir=data_dir(), chunks=ChunkOptions(**run)).summary())
        return
    if experts is None:
        raise click.UsageError("Missing option '--experts' (required with --needs).")
    files = {"expert": experts, "resource": resources, "project": projects}
    targets = {target_type: path for target_type, path in files.items() if path is not None}
    params = read_params(params_file)
    if check:
        report = check_inputs(needs_file, targets, params=params, out=out)
        for line in report.lines():
            click.echo(line)
        if not report.ok:
            sys.exit(EXIT_USAGE)
        return
    if out is None:
        raise click.UsageError("--out is required (unless --check is given)")
    result = run_batch(
        needs_file, targets, out, k=k, params=params, skip_invalid=rejects_file, fit_sample=fit_sample,
        chunks=ChunkOptions(**run),
    )
    click.echo(result.summary())


def _batch_check_database(out: Path | None) -> None:
    """``matcher batch --check`` without ``--needs``: the active model, the database and the output folder."""
    from matcher.errors import BatchError
    from matcher.inputs.library import data_dir
    from matcher.jobs.output import check_output
    from matcher.jobs.sources import read_libraries
    from matcher.matching import persist
    from matcher.store.db import database_url, safe_url
    from matcher.store.seed import ensure_database

    problems = []
    version = persist.active_version()
    try:
        if version is None:
            raise MatcherError(f"no active model in {persist.models_dir()}: run `matcher train` first")
        manifest = persist.read_manifest(version, root=persist.models_dir())
        click.echo(f"model: version {manifest['version']} in {persist.models_dir()}")
    except MatcherError as error:
        problems.append(f"model: {error}")
    url = database_url()
    try:
        ensure_database(url, data_dir())
        _, libs = read_libraries(url)
        open_needs = int((libs.needs["status"] == "open").sum())
        click.echo(f"database: {safe_url(url)}: {open_needs} open needs of {len(libs.needs)}")
    except MatcherError as error:
        problems.append(f"database: {error}")
    if out is not None:
        try:
            check_output(out)
        except BatchError as error:
            problems.append(str(error))
    for problem in problems:
        click.echo(problem)
    if problems:
        sys.exit(EXIT_USAGE)
    click.echo("ready to match the open needs")


@click.command()
@click.option("--needs", "needs_file", type=click.Path(path_type=Path), help="Needs file; without it: the open needs.")
@click.option("--experts", type=click.Path(path_type=Path), help="Experts file (with --needs).")
@click.option("--resources", type=click.Path(path_type=Path), help="Resources file (with --needs).")
@click.option("--params", "params_file", type=click.Path(path_type=Path), help="Model parameters (with --needs).")
@click.option("--per-need", default=1, show_default=True, type=click.IntRange(min=0), help="Experts per need, at most.")
@click.option(
    "--resources-per-need", default=0, show_default=True, type=click.IntRange(min=0), help="Resources per need."
)
@click.option(
    "--candidates", default=20, show_default=True, type=click.IntRange(min=1), help="Candidate targets per need."
)
@click.option("--alternates", default=3, show_default=True, type=click.IntRange(min=0), help="Alternates per need.")
@click.option("--min-score", default=0.0, show_default=True, type=float, help="Never assign a pair scoring below.")
@click.option("--cover-first", is_flag=True, help="One expert for every need before any need gets a second.")
@click.option("--conflicts", type=click.Path(path_type=Path), help="Conflicts file: expert_id, org_id, relation.")
@click.option("--forced", type=click.Path(path_type=Path), help="Forced assignments file: need_id, expert_id.")
@click.option("--time-limit", type=click.FloatRange(min=0, min_open=True), help="Seconds; then the best result so far.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(min=1), help="Processes for scoring.")
@click.option("--out", type=click.Path(path_type=Path), help="The assignment: .csv, or .parquet for Parquet.")
@click.option("--commit", is_flag=True, help="Book the assignment as engagements in the database.")
@click.option("--check", is_flag=True, help="Only report whether supply meets demand; write nothing.")
def assign(
    needs_file: Path | None,
    experts: Path | None,
    resources: Path | None,
    params_file: Path | None,
    per_need: int,
    resources_per_need: int,
    candidates: int,
    alternates: int,
    min_score: float,
    cover_first: bool,
    conflicts: Path | None,
    forced: Path | None,
    time_limit: float | None,
    workers: int,
    out: Path | None,
    commit: bool,
    check: bool,
) -> None:
    """Assign experts (and resources) to the open needs within every expert's free capacity.

    Maximises the total score over each need's best candidates (min-cost flow), never assigning an
    expert beyond capacity or across a conflict of interest. Writes the assignment with alternates,
    OUT's .unassigned, .loads and .summary.json files; --commit books it as engagements.
    """
    from matcher.inputs.library import data_dir
    from matcher.jobs.assign.job import AssignInputs, AssignOptions, run_assign

    if needs_file is None:
        given = {"--experts": experts, "--resources": resources, "--params": params_file}
        refused = [name for name, value in given.items() if value is not None]
        if refused:
            raise click.UsageError(
                f"{', '.join(refused)} go{'es' if len(refused) == 1 else ''} with --needs: without --needs, "
                "assign takes the database's open needs and the active model"
            )
        target_files = None
    else:
        if experts is None and resources is None:
            raise click.UsageError("Missing option '--experts' (required with --needs).")
        target_files = {t: p for t, p in (("expert", experts), ("resource", resources)) if p is not None}
    if out is None and not check:
        raise click.UsageError("--out is required (unless --check is given)")
    options = AssignOptions(
        per_need=per_need,
        resources_per_need=resources_per_need,
        candidates=candidates,
        alternates=alternates,
        min_score=min_score,
        cover_first=cover_first,
        time_limit=time_limit,
    )
    inputs = AssignInputs(
        needs_file=needs_file,
        target_files=target_files,
        params=read_params(params_file) if params_file is not None else None,
        conflicts=conflicts,
        forced=forced,
        data_dir=data_dir(),
    )
    report = run_assign(
        out,
        options=options,
        inputs=inputs,
        commit=commit,
        check=check,
        workers=workers,
        progress=lambda message: click.echo(f"matcher: {message}", err=True),
    )
    if check:
        for target_type, result in report.results.items():
            click.echo(f"== {target_type}: {'feasible' if result.feasibility.feasible else 'not feasible'}")
            for en, zh in zip(result.feasibility.lines("en"), result.feasibility.lines("zh"), strict=True):
                click.echo(f"{en}\n  {zh}")
        return
    for line in report.lines():
        click.echo(line)
