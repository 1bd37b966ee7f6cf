"""The ``matcher`` command line; with ``create_app`` the only place that configures logging.

Every expected failure is one clear line on stderr and exit status 2; never a traceback.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import click

from matcher.errors import MatcherError
from matcher.matching.rank import WEAK_SCORE

logger = logging.getLogger("matcher")

EXIT_USAGE = 2


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("jieba").setLevel(logging.WARNING)


def _read_params(path: Path | None) -> dict[str, Any]:
    """A ``--params`` file: a flat JSON object of ``get_params()`` keys."""
    if path is None:
        return {}
    try:
        params = json.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError as error:
        raise click.BadParameter(f"{path}: file not found", param_hint="--params") from error
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise click.BadParameter(f"{path}: not valid JSON ({error})", param_hint="--params") from error
    if not isinstance(params, dict):
        raise click.BadParameter(f"{path}: expected a JSON object of parameters", param_hint="--params")
    return params


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log progress to stderr.")
def cli(verbose: bool) -> None:
    """Match social-work needs to experts, resources and exemplary projects."""
    _configure_logging(verbose)


@cli.command()
@click.option("--params", "params_file", type=click.Path(path_type=Path), help="JSON object of model parameters.")
@click.option("--no-activate", is_flag=True, help="Save the version without making it active.")
@click.option("--if-none-active", is_flag=True, help="Do nothing when an active version exists.")
@click.option(
    "--needs", "needs_file", type=click.Path(path_type=Path), help="File mode: needs file (CSV, JSONL or XLSX)."
)
@click.option("--experts", type=click.Path(path_type=Path), help="Experts file (required with --needs).")
@click.option("--resources", type=click.Path(path_type=Path), help="Resources file (with --needs).")
@click.option("--projects", type=click.Path(path_type=Path), help="Projects file (with --needs).")
@click.option(
    "--judgments",
    type=click.Path(path_type=Path),
    help="Graded judgments: need_id, target_type, target_id, grade (with --needs).",
)
@click.option("--out", type=click.Path(path_type=Path), help="The version folder to write (with --needs).")
def train(
    params_file: Path | None,
    no_activate: bool,
    if_none_active: bool,
    needs_file: Path | None,
    experts: Path | None,
    resources: Path | None,
    projects: Path | None,
    judgments: Path | None,
    out: Path | None,
) -> None:
    """Fit the matcher on the libraries and save a new model version in models/.

    With --needs (file mode), fit on the files instead, without the database, and write the version
    folder --out (never activated: use it with `matcher batch --model` and `matcher match --model`).
    """
    from matcher.matching import persist
    from matcher.matching.training import train_files, train_version

    if needs_file is not None:
        if no_activate or if_none_active:
            flag = "--no-activate" if no_activate else "--if-none-active"
            raise click.UsageError(f"{flag} does not go with --needs: a version fitted on files is never activated")
        if experts is None:
            raise click.UsageError("Missing option '--experts' (required with --needs).")
        if out is None:
            raise click.UsageError("Missing option '--out' (required with --needs): the version folder to write.")
        files = {"expert": experts, "resource": resources, "project": projects}
        targets = {t: p for t, p in files.items() if p is not None}
        version = train_files(
            needs_file,
            targets,
            out,
            judgments=judgments,
            params=_read_params(params_file),
            command=["matcher", *sys.argv[1:]] if sys.argv else ["matcher", "train"],
        )
        click.echo(f"saved model version {version} in {out} (fitted on files; not activated)")
        return
    given = {"--experts": experts, "--resources": resources, "--projects": projects, "--judgments": judgments}
    given["--out"] = out
    refused = [name for name, value in given.items() if value is not None]
    if refused:
        raise click.UsageError(f"{refused[0]} goes with --needs (file mode)")
    active = persist.active_version()
    if if_none_active and active and (persist.models_dir() / active).is_dir():
        click.echo(f"model version {active} is active; nothing to do")
        return
    version = train_version(_read_params(params_file), activate=not no_activate)
    click.echo(f"saved model version {version}" + ("" if no_activate else " (active)"))


@cli.command()
@click.argument("text")
@click.option("--k", default=5, show_default=True, type=int, help="Results per target type (1-50).")
@click.option("--targets", default=None, help="Comma-separated target types: expert,resource,project.")
@click.option("--county", default=None, help="Keep targets that serve this county.")
@click.option("--json", "as_json", is_flag=True, help="Print the HTTP response body as JSON.")
@click.option(
    "--model", "model_dir", type=click.Path(path_type=Path), help="A model version folder: rank its own targets."
)
def match(text: str, k: int, targets: str | None, county: str | None, as_json: bool, model_dir: Path | None) -> None:
    """Match a need typed as TEXT with the active model (or the version folder --model)."""
    from pydantic import ValidationError

    from matcher.inputs.library import data_dir
    from matcher.matching import persist
    from matcher.service.match import MatchRequest, MatchService

    payload: dict[str, Any] = {"text": text, "k": k}
    if targets:
        payload["targets"] = [t.strip() for t in targets.split(",") if t.strip()]
    if county:
        payload["filters"] = {"county": county}
    try:
        request = MatchRequest.model_validate(payload)
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        field = ".".join(str(p) for p in first["loc"]) or "text"
        raise click.UsageError(f"{field}: {first['msg']}") from error
    if model_dir is not None:
        body = _match_with_folder(model_dir, request)
    else:
        body = MatchService(persist.models_dir(), data_dir()).match(request)
    if as_json:
        click.echo(json.dumps(body, ensure_ascii=False, indent=2))
        return
    for target_type, results in body["results"].items():
        click.echo(f"== {target_type} ({len(results)})")
        for rank, result in enumerate(results, 1):
            reasons = result["reasons"]
            terms = "、".join(t["term"] for t in reasons["terms"]) or "-"
            tags = "、".join(reasons["tags"]) or "-"
            click.echo(f"{rank:>2}. {result['score']:.3f}  {result['id']}  {result['name']}  词: {terms}  标签: {tags}")


def _match_with_folder(folder: Path, request: Any) -> dict[str, Any]:
    """The ``matcher match --json`` body of one need ranked by the version folder's own targets."""
    from matcher.matching import persist

    model, manifest = persist.load_folder(folder)
    need = {"id": "", "text": request.text, "tags": request.tags, "counties": [], "org_id": None}
    county = request.filters.county if request.filters is not None else None
    types = [t for t in (request.targets or model.target_types_) if t in model.target_types_]
    results = model.recommend(need, k=request.k, target_types=types, county=county)
    return {"model_version": manifest.get("version"), "results": results}


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64))
@click.option("--timeout", default=60, show_default=True, type=click.IntRange(5, 3600), help="Worker timeout, s.")
def serve(host: str, port: int, workers: int, timeout: int) -> None:
    """Serve the API and the web page with gunicorn (JSON logs on stderr).

    Off the loopback address, API keys must be configured (`matcher keys create`, or MATCHER_API_KEYS);
    on it, while none is, keyless requests are served as the local coordinator.
    """
    from matcher.web.server import run

    _check_bind(host)
    from matcher.web.monitoring import configure_logging

    configure_logging(logging.INFO)
    run(host=host, port=port, workers=workers, timeout=timeout)


def _keys_configured() -> bool:
    """MATCHER_API_KEYS (checked here) or any row of the api_keys table."""
    from matcher.config import Settings
    from matcher.inputs.library import data_dir
    from matcher.service.roles import parse_env_keys
    from matcher.store.db import database_url
    from matcher.store.keys import count_keys
    from matcher.store.seed import ensure_database
    from matcher.store.transactions import transaction

    if parse_env_keys(Settings.from_env().api_keys):
        return True
    url = database_url()
    ensure_database(url, data_dir())
    with transaction(url) as session:
        return count_keys(session) > 0


def _check_bind(host: str) -> None:
    from matcher.config import Settings
    from matcher.service.roles import is_loopback, parse_env_keys

    if is_loopback(host):
        parse_env_keys(Settings.from_env().api_keys)  # a malformed entry stops the start here
        return
    if not _keys_configured():
        raise click.UsageError(
            f"refusing to serve on {host} without API keys: anyone who can reach it would be a coordinator. "
            "Create a key first (`matcher keys create --name NAME --role coordinator`, or set MATCHER_API_KEYS), "
            "or serve on 127.0.0.1"
        )


@cli.command()
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
    params = _read_params(params_file)
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
    from matcher.matching import persist
    from matcher.store.db import database_url, safe_url
    from matcher.store.libraries import load_libraries_db
    from matcher.store.seed import ensure_database
    from matcher.store.transactions import transaction

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
        with transaction(url) as session:
            libs = load_libraries_db(session)
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


@cli.command()
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
        params=_read_params(params_file) if params_file is not None else None,
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


@cli.command()
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
    from matcher.store.transactions import transaction

    wanted = [s.strip() for s in sources.replace("，", ",").split(",") if s.strip()]
    unknown = sorted(set(wanted) - {"follow_up", "attendance"})
    if unknown or not wanted:
        raise click.UsageError(f"--sources: use follow_up and/or attendance, not {', '.join(unknown) or 'nothing'}")
    if out.suffix.lower() not in (".csv", ".xlsx"):
        raise click.UsageError(f"--out {out}: use a .csv or .xlsx file name")
    with transaction(_store_url()) as session:
        frames = []
        if "follow_up" in wanted:
            frames.append(grades.outcome_labels_db(session))
        if "attendance" in wanted:
            frames.append(grades.event_labels_db(session))
    rows = grades.judgment_rows(frames)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_table(rows, grades.JUDGMENT_COLUMNS, out, sheet="judgments")
    click.echo(f"wrote {len(rows)} judged pairs ({', '.join(wanted)}) to {out}")


@cli.command()
@click.option("--period", required=True, help="A quarter (2026Q3), a month (2026-07) or a year (2026).")
@click.option("--county", default=None, help="Only this county's organisations (e.g. 雄县).")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="The workbook to write (.xlsx).")
def report(period: str, county: str | None, out: Path) -> None:
    """The bureau report (工作报表) of a period, with the previous period beside it, as XLSX."""
    from matcher.documents.bureau import bureau_report, parse_period, report_workbook
    from matcher.documents.writer import atomic_file
    from matcher.store.transactions import transaction

    if out.suffix.lower() != ".xlsx":
        raise click.UsageError(f"--out {out}: the report is a workbook; use a .xlsx file name")
    parse_period(period)  # a bad period is refused before the database is opened
    url = _store_url()
    with transaction(url) as session:
        body = bureau_report(session, period, county)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(out) as tmp:
        tmp.write_bytes(report_workbook(body))
    figures = sum(len(t["rows"]) for t in body["tables"])
    where = body["county"] or "all counties"
    click.echo(
        f"report {body['period']['label']} ({body['period']['start']} to {body['period']['end']}, {where}), "
        f"previous {body['previous']['label']}: {len(body['tables'])} tables, {figures} figures; wrote {out}"
    )


@cli.command()
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
    from matcher.matching.training import stored_libraries
    from matcher.quality import evaluate as evaluation

    params = _read_params(params_file)
    out_dir.mkdir(parents=True, exist_ok=True)
    libs = stored_libraries()
    rows = evaluation.evaluate_history(libs, params, test_share=test_share, n_resamples=resamples).rows
    rows += evaluation.evaluate_known_items(libs, params, n_resamples=resamples)
    if bench_dir is not None:
        bench = evaluation.load_bench(bench_dir)
        if bench_needs:
            bench = bench.subset(bench_needs)
        rows += evaluation.evaluate_bench(bench, params, n_resamples=resamples)[0]
    evaluation.write_results(rows, out_dir / "evaluation.csv")
    evaluation.plot_ndcg(rows, out_dir / "ndcg_at_k.png")
    for row in rows:
        if (row["metric"] == "nDCG" and row["k"] in (5, 10)) or row["metric"] == "PAIR":
            k = f"@{row['k']}" if row["k"] != "" else ""
            click.echo(
                f"{row['dataset']:8} {row['method']:22} {row['metric']}{k:4} {row['value']:.4f} "
                f"[{row['ci_low']:.4f}, {row['ci_high']:.4f}] n={row['n']}"
            )
    click.echo(f"wrote {out_dir / 'evaluation.csv'} and {out_dir / 'ndcg_at_k.png'}")


@cli.command()
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
    from matcher.quality import evaluate as evaluation

    sources = load_active()
    model, libs = sources.model, sources.libraries
    needs, summary = evaluation.find_gaps(model, libs, target_type=target_type, threshold=threshold, status=status)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_frame_csv(needs, out_dir / "gaps.csv")
    write_frame_csv(summary, out_dir / "gaps_by_category_county.csv")
    evaluation.plot_gaps(summary, out_dir / "gaps.png")
    click.echo(f"{int(needs['weak'].sum())} of {len(needs)} needs have no {target_type} scoring {threshold} or more")
    for row in summary.head(8).itertuples(index=False):
        click.echo(f"  {row.dimension:8} {row.value:10} weak {row.weak}/{row.needs}")
    click.echo(f"wrote {out_dir / 'gaps.csv'}, {out_dir / 'gaps_by_category_county.csv'} and {out_dir / 'gaps.png'}")


@cli.command()
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
    from matcher.quality import evaluate as evaluation
    from matcher.quality import tune as tuning

    grid = _read_params(grid_file) if grid_file else None
    bench = evaluation.load_bench(bench_dir)
    if bench_needs:
        bench = bench.subset(bench_needs)
    best, table = tuning.tune(bench, grid, n_splits=folds, depth=depth)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "best_params.json").write_text(json.dumps(best, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    write_frame_csv(table, out_dir / "tune_results.csv")
    click.echo(f"best mean nDCG@10 {table['mean_test_score'].iloc[0]:.4f}: {table['params'].iloc[0]}")
    click.echo(f"wrote {out_dir / 'best_params.json'} and {out_dir / 'tune_results.csv'}")


_STORE_KINDS = (
    "organisations",
    "needs",
    "experts",
    "resources",
    "projects",
    "decisions",
    "events",
    "attendees",
    "stages",
    "milestones",
)


@cli.group()
def db() -> None:
    """Create and migrate the database ($DATABASE_URL, default instance/matcher.sqlite3)."""


@db.command("init")
def db_init() -> None:
    """Create the database, migrate it to the latest schema and fill it from data/ when it is empty."""
    from matcher.inputs.library import data_dir
    from matcher.store.db import current_revision, database_url, safe_url
    from matcher.store.kinds import counts
    from matcher.store.seed import ensure_database
    from matcher.store.transactions import transaction

    url = database_url()
    filled = ensure_database(url, data_dir())
    with transaction(url) as session:
        sizes = counts(session)
    click.echo(f"database {safe_url(url)} at schema revision {current_revision(url)}")
    listed = ", ".join(f"{sizes[k]} {k}" for k in _STORE_KINDS)
    if filled:
        click.echo(f"filled from {data_dir()}: {listed}, {sizes['open_engagements']} open engagements")
    else:
        click.echo(f"already holds data ({listed}); nothing filled")


@db.command("upgrade")
def db_upgrade() -> None:
    """Migrate the database to the latest schema (creating it if needed); data is not touched."""
    from matcher.store.db import current_revision, database_url, safe_url, upgrade
    from matcher.store.transactions import database_errors

    url = database_url()
    with database_errors(url):
        before = current_revision(url)
        upgrade(url)
        after = current_revision(url)
    if before == after:
        click.echo(f"database {safe_url(url)} is at schema revision {after}; nothing to do")
    else:
        click.echo(f"database {safe_url(url)} migrated from {before or 'empty'} to schema revision {after}")


@cli.command("import")
@click.argument("kind", type=click.Choice(_STORE_KINDS))
@click.argument("file", type=click.Path(path_type=Path))
def import_command(kind: str, file: Path) -> None:
    """Import FILE (CSV, JSONL or XLSX) into KIND: upsert by id, all rows or none.

    An empty database is first created and filled from data/, as ``matcher db init`` does.
    """
    from matcher.inputs.library import data_dir
    from matcher.store.db import database_url
    from matcher.store.io import ImportRejectedError, import_file
    from matcher.store.seed import ensure_database

    url = database_url()
    ensure_database(url, data_dir())
    try:
        report = import_file(kind, file, url=url, actor=_cli_actor())
    except ImportRejectedError as error:
        if len(error.problems) == 1:
            click.echo(f"matcher: {error.problems[0]}; nothing was imported", err=True)
            sys.exit(EXIT_USAGE)
        click.echo(f"matcher: {file}: {len(error.problems)} problem(s); nothing was imported:", err=True)
        for problem in error.problems:
            click.echo(f"  {problem}", err=True)
        sys.exit(EXIT_USAGE)
    click.echo(str(report))


@cli.command("export")
@click.argument("kind", type=click.Choice(_STORE_KINDS))
@click.argument("file", type=click.Path(path_type=Path))
def export_command(kind: str, file: Path) -> None:
    """Export the records of KIND to FILE (.csv, .jsonl or .xlsx); importing it back changes nothing."""
    from matcher.inputs.library import data_dir
    from matcher.store.db import database_url
    from matcher.store.io import export_file
    from matcher.store.seed import ensure_database

    url = database_url()
    ensure_database(url, data_dir())
    written = export_file(kind, file, url=url, actor=_cli_actor())
    click.echo(f"exported {written} {kind} to {file}")


# ---------------------------------------------------------------- keys, models, purge


def _cli_actor() -> str:
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _store_url() -> str:
    from matcher.inputs.library import data_dir
    from matcher.store.db import database_url
    from matcher.store.seed import ensure_database

    url = database_url()
    ensure_database(url, data_dir())
    return url


@cli.group()
def keys() -> None:
    """API keys: create (shown once, stored as a SHA-256), list, revoke."""


@keys.command("create")
@click.option("--name", required=True, help="Who or what uses the key.")
@click.option("--role", required=True, type=click.Choice(["coordinator", "analyst", "admin"]))
def keys_create(name: str, role: str) -> None:
    """Create a key and print it (the only time it is shown)."""
    from matcher.store import audit
    from matcher.store import keys as stored_keys
    from matcher.store.transactions import transaction

    with transaction(_store_url()) as session:
        token, item = stored_keys.create_key(session, name, role, created_by=_cli_actor())
        audit.record(
            session,
            actor=_cli_actor(),
            action="key_create",
            kind="api_keys",
            record_id=item["id"],
            detail={"role": role},
        )
    click.echo(token)
    click.echo(f"created key {item['id']} ({role}, {item['name']}); store it now: it is not shown again", err=True)


@keys.command("list")
def keys_list() -> None:
    """Every key (never the key itself), revoked ones included."""
    from matcher.store import keys as stored_keys
    from matcher.store.transactions import transaction

    with transaction(_store_url()) as session:
        items = stored_keys.list_keys(session)
    if not items:
        click.echo("no keys: the server serves keyless loopback requests as the local coordinator")
    for item in items:
        state = f"revoked {item['revoked_at']}" if item["revoked_at"] else "active"
        click.echo(f"{item['id']}  {item['role']:<11}  {item['name']}  created {item['created_at']}  {state}")


@keys.command("revoke")
@click.argument("key_id")
def keys_revoke(key_id: str) -> None:
    """Revoke the key KEY_ID (running servers refuse it within a few seconds)."""
    from matcher.store import audit
    from matcher.store import keys as stored_keys
    from matcher.store.transactions import transaction

    with transaction(_store_url()) as session:
        stored_keys.revoke_key(session, key_id)
        audit.record(session, actor=_cli_actor(), action="key_revoke", kind="api_keys", record_id=key_id)
    click.echo(f"revoked key {key_id}")


@cli.group()
def models() -> None:
    """Model versions in models/: list, activate, rollback, sign."""


@models.command("list")
@click.option("--verify", is_flag=True, help="Also check each artefact's sha256 (and HMAC when signing).")
def models_list(verify: bool) -> None:
    """Versions, newest first; * marks the active one."""
    from matcher.matching import persist

    rows = persist.describe_versions()
    if not rows:
        click.echo(f"no model versions in {persist.models_dir()}: run `matcher train`")
    for row in rows:
        line = f"{'*' if row['active'] else ' '} {row['version']}  {row.get('model') or '-'}"
        line += "  signed" if row.get("signed") else "  unsigned"
        if row.get("error"):
            line += f"  ERROR {row['error']}"
        elif verify:
            try:
                persist.verify(row["version"])
                line += "  verified"
            except MatcherError as error:
                line += f"  REFUSED {error}"
        click.echo(line)
        reranker = (row.get("metrics") or {}).get("reranker") or {}
        for target_type, verdict in sorted((reranker.get("gate") or {}).items()):
            served = "re-ranked" if target_type in reranker.get("reranked", []) else "base score"
            click.echo(f"      {target_type}: {served} ({verdict.get('why', '')})")


@models.command("activate")
@click.argument("version")
def models_activate(version: str) -> None:
    """Make VERSION active after checking it; running servers switch on their next request."""
    from matcher.matching import persist

    previous = persist.activate(version, by=_cli_actor())
    _audit_model("model_activate", version, previous)
    click.echo(f"model version {version} is active (was {previous or 'none'})")


@models.command("rollback")
def models_rollback() -> None:
    """Go back to the version active before the current one (models/HISTORY)."""
    from matcher.matching import persist

    current, target = persist.rollback(by=_cli_actor())
    _audit_model("model_rollback", target, current)
    click.echo(f"rolled back from {current} to {target}")


@models.command("sign")
@click.argument("version")
def models_sign(version: str) -> None:
    """Add artefact_hmac to VERSION's manifest with $MATCHER_SIGNING_KEY (after checking its sha256)."""
    from matcher.matching import persist

    persist.sign(version)
    click.echo(f"signed model version {version}")


def _audit_model(action: str, version: str, previous: str | None) -> None:
    """Record a model change in the audit log when the database can be reached (the change itself is done)."""
    from matcher.store import audit
    from matcher.store.transactions import transaction

    try:
        with transaction(_store_url()) as session:
            audit.record(
                session,
                actor=_cli_actor(),
                action=action,
                kind="models",
                record_id=version,
                detail={"previous": previous},
            )
    except MatcherError as error:
        logger.warning("the model change was not written to the audit log: %s", error)


@cli.command()
@click.argument("kind", type=click.Choice(["organisations", "needs", "experts", "resources", "projects"]))
@click.argument("ids", nargs=-1, required=True)
def purge(kind: str, ids: tuple[str, ...]) -> None:
    """Erase the personal data of deleted records of KIND (on a person's request); audited.

    Each record must be deleted first (DELETE /v1/KIND/ID). Its row stays, so decisions keep their
    meaning; names become 已清除 and texts and contacts are emptied. Model versions trained before
    still hold the old texts: retrain (`matcher train`) and remove older versions from models/.
    """
    from matcher.store import audit
    from matcher.store.transactions import transaction

    with transaction(_store_url()) as session:
        for record_id in ids:
            fields = audit.purge_record(session, kind, record_id)
            audit.record(
                session, actor=_cli_actor(), action="purge", kind=kind, record_id=record_id, detail={"fields": fields}
            )
            click.echo(f"purged {kind} {record_id}: {', '.join(fields) or 'nothing left to erase'}")


def _add_commands() -> None:
    from matcher.cli.events import events

    cli.add_command(events)


_add_commands()


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``matcher`` console script."""
    try:
        cli.main(args=argv, prog_name="matcher", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except click.ClickException as error:
        click.echo(f"matcher: {error.format_message()}", err=True)
        sys.exit(EXIT_USAGE)
    except (MatcherError, ValueError, OSError) as error:
        click.echo(f"matcher: {error}", err=True)
        sys.exit(EXIT_USAGE)
    except Exception as error:
        logger.debug("unexpected error", exc_info=True)
        click.echo(f"matcher: internal error: {_describe_error(error)}", err=True)
        sys.exit(1)


def _describe_error(error: Exception) -> str:
    """An unexpected error in one line; a database error by its type only (its text holds SQL and values)."""
    from sqlalchemy.exc import SQLAlchemyError

    if isinstance(error, SQLAlchemyError):
        orig = getattr(error, "orig", None)
        return f"database error {type(orig or error).__name__}"
    return f"{type(error).__name__}: {error}".splitlines()[0]


if __name__ == "__main__":
    main()
