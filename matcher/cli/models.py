"""``matcher train``, ``matcher match`` and ``matcher models``: fit, use and manage model versions."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import click

from matcher.cli import read_params
from matcher.cli.library import cli_actor, store_url
from matcher.errors import MatcherError

logger = logging.getLogger("matcher")  # the package's logger, as the messages have always been signed


@click.command()
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
    from matcher.jobs.training import train_files, train_version
    from matcher.matching import persist

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
            params=read_params(params_file),
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
    version = train_version(read_params(params_file), activate=not no_activate)
    click.echo(f"saved model version {version}" + ("" if no_activate else " (active)"))


@click.command()
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


@click.group()
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

    previous = persist.activate(version, by=cli_actor())
    _audit_model("model_activate", version, previous)
    click.echo(f"model version {version} is active (was {previous or 'none'})")


@models.command("rollback")
def models_rollback() -> None:
    """Go back to the version active before the current one (models/HISTORY)."""
    from matcher.matching import persist

    current, target = persist.rollback(by=cli_actor())
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
        with transaction(store_url()) as session:
            audit.record(
                session,
                actor=cli_actor(),
                action=action,
                kind="models",
                record_id=version,
                detail={"previous": previous},
            )
    except MatcherError as error:
        logger.warning("the model change was not written to the audit log: %s", error)
