"""Learning from labelled judgments: the grade table, ``matcher train`` file mode, ``batch --model``,
``match --model``, the manifest, the activation refusal and a re-ranker that learns a known answer."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from matcher.errors import ModelError
from matcher.matching import grades, persist
from matcher.matching.estimator import build_matcher
from matcher.matching.judgments import JUDGED_FEATURES, JudgedReranker, read_judgments
from matcher.quality import metrics

ROOT = Path(__file__).resolve().parents[1]

EXPERTS = [
    ("E1", "周敏", "长期研究个案管理的流程与转介，带过多期个案会议督导。", "个案管理"),
    ("E2", "李强", "社区养老服务与失能老人居家照护，组织过长者食堂。", "养老服务"),
    ("E3", "王芳", "儿童保护与校园欺凌干预，学校社会工作项目督导。", "儿童保护"),
    ("E4", "赵磊", "社会组织财务管理、审计与项目预算编制。", "财务管理"),
    ("E5", "陈静", "社区营造与居民议事，社区基金会筹建。", "社区营造"),
]
NEEDS = [
    ("N1", "我们需要个案管理方面的督导，学习转介流程", "个案管理"),
    ("N2", "社区里失能老人多，想开展居家养老服务", "养老服务"),
    ("N3", "学校里出现欺凌现象，想做儿童保护项目", "儿童保护"),
    ("N4", "项目预算怎么编，财务审计要准备什么", "财务管理"),
]
JUDGMENTS = [("N1", "E1", 4), ("N1", "E3", 0), ("N2", "E2", 3), ("N2", "E5", 1), ("N3", "E3", 4), ("N4", "E4", 2)]


def write_csv(path: Path, header: list[str], rows: list[tuple]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    return {
        "experts": write_csv(tmp_path / "experts.csv", ["id", "name", "text", "tags"], EXPERTS),
        "needs": write_csv(tmp_path / "needs.csv", ["id", "text", "tags"], NEEDS),
        "judgments": write_csv(
            tmp_path / "judgments.csv", ["need_id", "expert_id", "relevance"], JUDGMENTS
        ),
    }


def run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.update(MATCHER_MODELS_DIR=str(cwd / "models"), MATCHER_DATA_DIR=str(cwd / "no-data"))
    return subprocess.run(
        [sys.executable, "-m", "matcher.cli", *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=300,
        check=False,
    )


def train_args(files: dict[str, Path], out: Path, **extra: Path) -> list[str | Path]:
    args: list[str | Path] = ["train", "--needs", files["needs"], "--experts", files["experts"], "--out", out]
    for name, path in extra.items():
        args += [f"--{name}", path]
    return args


# ------------------------------------------------------------------------------ grades
@pytest.mark.parametrize(
    ("kind", "value", "details", "expected"),
    [
        ("judgment", 3, {}, 3.0),
        ("judgment", "2.5", {}, 2.5),
        ("judgment", 7, {}, 4.0),
        ("judgment", -1, {}, 0.0),
        ("judgment", "accepted", {}, 2.0),
        ("judgment", " Rejected ", {}, 0.0),
        ("judgment", "接受", {}, 2.0),
        ("decision", "rejected", {}, 0.0),
        ("decision", "accepted", {}, 2.0),
        ("decision", "completed", {}, 3.0),
        ("decision", "completed", {"rating": 3}, 3.0),
        ("decision", "completed", {"rating": 4}, 4.0),
        ("decision", "completed", {"rating": 5}, 4.0),
        ("decision", "completed", {"rating": 2}, 1.0),
        ("decision", "cancelled", {}, None),
        ("outcome", 5, {}, 4.0),
        ("outcome", 1, {}, 0.0),
    ],
)
def test_the_grade_table(kind: str, value: object, details: dict, expected: float | None) -> None:
    assert grades.grade(kind, value, **details) == expected


@pytest.mark.parametrize("value", ["good", "", None, float("nan"), True, "inf"])
def test_a_bad_judgment_has_no_grade(value: object) -> None:
    with pytest.raises(grades.GradeError, match="grade must be a number"):
        grades.grade("judgment", value)


def test_new_kinds_register_their_grade_and_the_best_grade_wins() -> None:
    with pytest.raises(grades.GradeError, match="no grade for evidence of kind 'event'"):
        grades.grade("event", 5)
    grades.register("event", lambda value, **_: float(value) - 1.0)
    try:
        assert grades.grade("event", 5) == 4.0
        assert grades.best_grade([("decision", "accepted", {}), ("event", 4, {})]) == 3.0
        with pytest.raises(grades.GradeError, match="outside"):
            grades.grade("event", 9)
    finally:
        grades._GRADERS.pop("event")


# ------------------------------------------------------------------------- the file
def test_judgments_file_with_chinese_headers_and_words(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "j.csv", ["需求编号", "目标类型", "目标编号", "评分"], [("N1", "专家", "E1", "accepted")])
    frame = read_judgments(path, needs=["N1"], targets={"expert": ["E1"], "resource": ["R1"]})
    assert frame.to_dict("records") == [{"need_id": "N1", "target_type": "expert", "target_id": "E1", "grade": 2.0, "row": 1}]


# ------------------------------------------------------------------------ train files
def test_train_file_mode_writes_a_version_folder_with_its_provenance(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "v1"
    result = run(*train_args(files, out, judgments=files["judgments"]), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "not activated" in result.stdout
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "model.joblib"]
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["source"] == "files"
    assert manifest["command"][:2] == ["matcher", "train"] and "--judgments" in manifest["command"]
    for role in ("needs", "experts", "judgments"):
        digest = hashlib.sha256(files[role].read_bytes()).hexdigest()
        assert manifest["inputs"][role] == {"path": str(files[role]), "sha256": digest}
    assert manifest["libraries"]["sizes"] == {"needs": 4, "experts": 5}
    assert manifest["metrics"]["judgments"] == {"pairs": 6, "needs": 4}
    assert not (tmp_path / "models").exists()  # nothing saved to, or activated in, models/
    model, _ = persist.load_folder(out)
    assert model.n_targets_ == {"expert": 5}


@pytest.mark.parametrize(
    ("header", "rows", "message"),
    [
        (["need_id", "expert_id"], [("N1", "E1")], "judgments.csv: missing column 'grade' (also accepted: 'relevance'"),
        (["need_id", "expert_id", "grade"], [("N1", "E1", 3), ("N2", "E9", 2)], "judgments.csv: row 2, column 'expert_id': unknown expert 'E9'"),
        (["need_id", "expert_id", "grade"], [("N1", "E1", "good")], "judgments.csv: row 1, column 'grade': grade must be a number"),
        (["need_id", "expert_id", "grade"], [("N7", "E1", 1)], "judgments.csv: row 1, column 'need_id': unknown need 'N7'"),
        (["need_id", "expert_id", "grade"], [("N1", "E1", 1), ("N1", "E1", 2)], "row 2, column 'expert_id': need 'N1' and expert 'E1' are judged twice"),
    ],
)
def test_bad_judgments_are_one_line_exit_2_and_nothing_written(
    files: dict[str, Path], tmp_path: Path, header: list[str], rows: list[tuple], message: str
) -> None:
    bad = write_csv(tmp_path / "judgments.csv", header, rows)
    out = tmp_path / "v1"
    result = run(*train_args(files, out, judgments=bad), cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_target_type_is_required_when_there_are_other_targets(files: dict[str, Path], tmp_path: Path) -> None:
    resources = write_csv(tmp_path / "resources.csv", ["id", "text"], [("R1", "社区活动场地，可容纳五十人")])
    result = run(*train_args(files, tmp_path / "v1", judgments=files["judgments"], resources=resources), cwd=tmp_path)
    assert result.returncode == 2
    assert "missing column 'target_type' (needed when resources or projects are given)" in result.stderr
    assert not (tmp_path / "v1").exists()


def test_train_file_mode_refuses_a_used_folder_and_activation_flags(files: dict[str, Path], tmp_path: Path) -> None:
    used = tmp_path / "used"
    used.mkdir()
    (used / "keep.txt").write_text("x", encoding="utf-8")
    result = run(*train_args(files, used), cwd=tmp_path)
    assert result.returncode == 2 and "already exists and is not an empty folder" in result.stderr
    assert sorted(p.name for p in used.iterdir()) == ["keep.txt"]
    result = run(*train_args(files, tmp_path / "v2"), "--no-activate", cwd=tmp_path)
    assert result.returncode == 2 and "--no-activate does not go with --needs" in result.stderr
    result = run("train", "--judgments", files["judgments"], cwd=tmp_path)
    assert result.returncode == 2 and "--judgments goes with --needs" in result.stderr


# ------------------------------------------------------------------ batch --model
@pytest.fixture
def version(files: dict[str, Path], tmp_path: Path) -> Path:
    out = tmp_path / "version"
    result = run(*train_args(files, out, judgments=files["judgments"]), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return out


def read_scores(path: Path) -> dict[tuple[str, str], float]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return {(r["need_id"], r["target_id"]): float(r["score"]) for r in csv.DictReader(handle)}


def test_batch_model_scores_as_the_version_recommends(files: dict[str, Path], version: Path, tmp_path: Path) -> None:
    own, given = tmp_path / "own.csv", tmp_path / "given.csv"
    result = run("batch", "--model", version, "--needs", files["needs"], "--k", "5", "--out", own, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    result = run(
        "batch", "--model", version, "--needs", files["needs"], "--experts", files["experts"], "--k", "5", "--out", given,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    model, _ = persist.load_folder(version)
    expected = {}
    for need_id, text, tag in NEEDS:
        for item in model.recommend({"id": need_id, "text": text, "tags": [tag]}, k=5, target_types=["expert"])["expert"]:
            expected[(need_id, item["id"])] = item["score"]
    assert read_scores(own) == expected
    assert read_scores(given) == expected  # the same targets, transformed with the version's vocabulary


def test_batch_model_with_other_targets_uses_the_fitted_vocabulary(files: dict[str, Path], version: Path, tmp_path: Path) -> None:
    fewer = write_csv(tmp_path / "fewer.csv", ["id", "name", "text", "tags"], [*EXPERTS[:2], ("E9", "新人", "个案管理与转介督导", "个案管理")])
    out = tmp_path / "out.csv"
    result = run("batch", "--model", version, "--needs", files["needs"], "--experts", fewer, "--out", out, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    scores = read_scores(out)
    assert {t for _, t in scores} <= {"E1", "E2", "E9"} and ("N1", "E9") in scores
    model, _ = persist.load_folder(version)
    features = len(model.feature_names_)
    from matcher.inputs.frames import table_targets_frame as targets_frame
    from matcher.jobs.batch import read_table

    model.sync_targets(targets_frame({"expert": read_table(fewer)}))
    assert len(model.feature_names_) == features  # no refit: the version's vocabulary
    table = model.match(pd.DataFrame([{"id": n, "text": t, "tags": [g]} for n, t, g in NEEDS]), k=10)
    assert {(r.need_id, r.target_id): r.score for r in table.itertuples()} == scores


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--params", "p.json"], "--params does not go with --model"),
        (["--fit-sample", "2"], "--fit-sample does not go with --model"),
    ],
)
def test_batch_model_refusals(files: dict[str, Path], version: Path, tmp_path: Path, extra: list[str], message: str) -> None:
    (tmp_path / "p.json").write_text("{}", encoding="utf-8")
    out = tmp_path / "out.csv"
    result = run("batch", "--model", version, "--needs", files["needs"], "--out", out, *extra, cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr and not out.exists()
    result = run("batch", "--model", version, "--out", out, cwd=tmp_path)
    assert result.returncode == 2 and "--model goes with --needs" in result.stderr


def test_match_model_ranks_the_versions_own_targets(version: Path, tmp_path: Path) -> None:
    result = run("match", "--model", version, "--json", "--k", "2", NEEDS[0][1], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    model, manifest = persist.load_folder(version)
    assert body["model_version"] == manifest["version"]
    expected = model.recommend({"id": "", "text": NEEDS[0][1], "tags": None}, k=2, target_types=["expert"])
    assert body["results"] == json.loads(json.dumps(expected, ensure_ascii=False))


def test_a_file_fitted_version_is_never_activated(version: Path, tmp_path: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    name = json.loads((version / "manifest.json").read_text(encoding="utf-8"))["version"]
    shutil.copytree(version, models / name)
    with pytest.raises(ModelError, match="fitted on files"):
        persist.activate(name, root=models)
    result = run("models", "activate", name, cwd=tmp_path)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "cannot serve" in result.stderr
    assert persist.active_version(models) is None


# ------------------------------------------------------------------ a known answer
def test_the_reranker_learns_a_known_answer_the_base_score_misses() -> None:
    """Relevant profiles hold the need's four characters in a row, inside long unrelated text;
    decoys are short and repeat its two halves apart. The base cosine prefers the decoys; the
    re-ranker, trained on other needs' judgments, learns the contiguous match (cover3, contained)."""
    rng = random.Random(0)
    topic = list("甲乙丙丁戊己庚辛壬癸子丑寅卯辰巳午未申酉戌亥金木水火土日月星山川风云雷电江河湖海松柏竹梅兰菊")
    noise_pool = list("的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过说产种面而方后多定行学法所民得经十三之进着等部度家力里如化高自二理起小物现实加量都两体制机当使点从业本去把性好应开它合还因由其些然前外天政四那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道命此变条只没结解问意建公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总次品式活设及管特件长求老头基资边流路级少图统接知较将组见计别她手角期根论运农指几九区强放决西被干做必战先回则任取据处队南给色光门即保治北造百规热领七口东导器压志世增争济阶油思术极交受联什认六共权收证改清己美再采转更单切打白教速花带安场身车例真务具万每目至达走积示议声报斗完类八离华名确才科张信马节话米整空元况今集温传许步群广石记需段研界拉林律叫且究观越织装影算低持音众书布复容儿须际商非验连断深难近矿千周委素技备半办青省列习响约支般史感劳便团往酸历市克何除消构府称太准精值号率族维划选标写存候毛亲快效斯院查型眼王按格养易置派层片始却专状育厂京识适属圆包住调满县局照参红细引听该铁价严")
    experts, needs, judgments = [], [], []
    used: set[str] = set()
    for n in range(80):
        while True:
            word = "".join(rng.sample(topic, 4))
            if word not in used:
                used.add(word)
                break
        needs.append({"id": f"N{n:02d}", "text": word, "tags": [], "counties": [], "org_id": None})
        for r in range(2):
            noise = "".join(rng.choice(noise_pool) for _ in range(40))
            experts.append((f"R{n:02d}{r}", noise[:20] + word + noise[20:]))
            judgments.append((f"N{n:02d}", f"R{n:02d}{r}", 3.0))
        for d in range(3):
            experts.append((f"D{n:02d}{d}", (word[:2] + "，") * 3 + (word[2:] + "，") * 3))
            judgments.append((f"N{n:02d}", f"D{n:02d}{d}", 0.0))
    targets = pd.DataFrame(
        {
            "target_type": "expert",
            "id": [e for e, _ in experts],
            "name": [e for e, _ in experts],
            "texts": [[t] for _, t in experts],
            "tags": [[] for _ in experts],
            "counties": [[] for _ in experts],
            "org_id": None,
            "capacity": pd.array([None] * len(experts), dtype="Int64"),
            "load": 0,
            "available": True,
        }
    )
    frame = pd.DataFrame(needs)
    judged = pd.DataFrame(judgments, columns=["need_id", "target_id", "grade"]).assign(target_type="expert")
    train_ids = set(frame["id"][:60])
    params = {"judged__max_iter": 50, "judged__min_samples_leaf": 5, "judged__depth": 20}
    base = build_matcher(params).fit(targets)
    learned = build_matcher(params).fit(targets).fit_judgments(
        frame.loc[frame["id"].isin(train_ids)], judged.loc[judged["need_id"].isin(train_ids)]
    )
    assert learned.reranker_.target_types_ == ("expert",)
    test = frame.loc[~frame["id"].isin(train_ids)]
    gains = {(n, t): g for n, t, g in zip(judged["need_id"], judged["target_id"], judged["grade"], strict=True)}

    def ndcg(model) -> float:
        table = model.match(test, k=5, target_types=["expert"])
        values = []
        for need_id, group in table.groupby("need_id"):
            ranked = group.sort_values("rank")["target_id"].tolist()
            values.append(metrics.ndcg_at_k(ranked, {t: g for (n, t), g in gains.items() if n == need_id}, 5))
        return float(np.mean(values))

    before, after = ndcg(base), ndcg(learned)
    assert before < 0.8, before  # the base score is fooled by the decoys
    assert after > 0.95 and after > before + 0.15, (before, after)
    scores = learned.match(test, k=5, target_types=["expert"])["score"]
    assert scores.between(0.0, 1.0).all()  # a probability: of the pair being relevant


def test_unjudged_candidates_weigh_what_unjudged_weight_says() -> None:
    """Judged pairs' grade rises with the need's cover; the unjudged candidates (grade 0 by
    assumption) all have a high cover. The less they weigh, the higher a high cover is graded."""
    rng = np.random.default_rng(0)
    n = 1200
    judged = np.arange(n) % 3 != 0
    cover = np.where(judged, rng.uniform(0, 1, n), rng.uniform(0.6, 1, n))
    frame = pd.DataFrame(0.0, index=range(n), columns=list(JUDGED_FEATURES))
    frame["cover1"] = cover
    frame["need_id"] = [f"N{i % 120}" for i in range(n)]
    frame["target_type"] = "expert"
    grades_ = np.where(judged, 4 * cover, 0.0)
    high = np.zeros((1, len(JUDGED_FEATURES)))
    high[0, JUDGED_FEATURES.index("cover1")] = 0.9

    def fitted(weight: float, frame: pd.DataFrame) -> JudgedReranker:
        return JudgedReranker(max_iter=50, min_samples_leaf=20, unjudged_weight=weight).fit(frame, grades_)

    plain = fitted(1.0, frame.assign(judged=judged))
    assert plain.get_params()["unjudged_weight"] == 1.0
    # weight 1 is the unweighted fit (and a frame without the column is all judged)
    assert fitted(1.0, frame).predict_grade("expert", high) == pytest.approx(plain.predict_grade("expert", high))
    light = fitted(0.05, frame.assign(judged=judged))
    assert plain.predict_grade("expert", high)[0] < 2.5 < light.predict_grade("expert", high)[0]


def test_a_few_candidates_still_grow_trees() -> None:
    """A leaf holds ``min_samples_leaf`` candidates, or a tenth of them when they are few: 150
    candidates under the default 200 still learn that a higher cover is a higher grade."""
    rng = np.random.default_rng(0)
    n = 150
    frame = pd.DataFrame(0.0, index=range(n), columns=list(JUDGED_FEATURES))
    frame["cover1"] = rng.uniform(0, 1, n)
    frame["need_id"] = [f"N{i % 15}" for i in range(n)]
    frame["target_type"] = "expert"
    model = JudgedReranker().fit(frame, np.round(3 * frame["cover1"].to_numpy()))
    assert model.get_params()["min_samples_leaf"] == 200 and model.models_["expert"].min_samples_leaf == 15
    low, high = np.zeros((2, len(JUDGED_FEATURES)))
    low[JUDGED_FEATURES.index("cover1")], high[JUDGED_FEATURES.index("cover1")] = 0.1, 0.9
    assert model.predict_proba("expert", low[None])[0] < 0.5 < model.predict_proba("expert", high[None])[0]


def test_a_database_version_says_so(tmp_path: Path) -> None:
    targets = pd.DataFrame(
        {
            "target_type": "expert",
            "id": [e[0] for e in EXPERTS],
            "name": [e[1] for e in EXPERTS],
            "texts": [[e[2]] for e in EXPERTS],
            "tags": [[e[3]] for e in EXPERTS],
            "counties": [[] for _ in EXPERTS],
            "org_id": None,
            "capacity": pd.array([None] * len(EXPERTS), dtype="Int64"),
            "load": 0,
            "available": True,
        }
    )
    version = persist.save(build_matcher().fit(targets), root=tmp_path, activate_version=False)
    manifest = persist.read_manifest(version, root=tmp_path)
    assert manifest["source"] == "database" and "inputs" not in manifest
    persist.activate(version, root=tmp_path)  # a database version still activates
    assert persist.active_version(tmp_path) == version


def test_serving_standing_equals_the_training_standing() -> None:
    from matcher.matching.judgments import STANDING_FEATURES, _standing_one, standing_features

    rng = np.random.default_rng(0)
    base = np.round(rng.random(30), 2)  # ties included
    frame = pd.DataFrame(
        {"need_id": "n", "base": base, "retrieved": True, "cover2": rng.random(30), "idf_cover": rng.random(30), "common_need": rng.random(30)}
    )
    order = np.argsort(-base, kind="stable")  # the matcher hands candidates over best first
    expected = standing_features(frame.iloc[order].reset_index(drop=True))[list(STANDING_FEATURES)].to_numpy()
    served = _standing_one(*(frame.iloc[order][c].to_numpy() for c in ("base", "cover2", "idf_cover", "common_need")))
    assert np.allclose(served, expected)
