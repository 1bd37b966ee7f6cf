#!/usr/bin/env python3
"""Single-need latency of matcher against a plain TF-IDF reference and rank-bm25, in one run.

The script generates a seeded library of Chinese expert profiles and needs (phrase banks of
social-work vocabulary), fits the scorers on the same profiles and times one need at a time:

* ``matcher.recommend``: ``Matcher.recommend(need, k=10, target_types=["expert"])``, the
  coordinator-facing path, reasons included;
* ``matcher.match``: ``Matcher.match(one_row_frame, k=10, target_types=["expert"])``, scores only;
* ``reference``: scikit-learn ``TfidfVectorizer(analyzer="char", ngram_range=(1, 2))`` on the profile
  texts; per need one ``transform``, one sparse product ``X @ q.T`` and ``np.argpartition`` top 10;
* ``reference, dense q``: the same with the query made dense, ``X @ q.toarray().ravel()``;
* ``rank-bm25``: ``BM25Okapi`` on the matcher's jieba tokens, ``get_scores`` and ``np.argpartition``
  top 10 (on the first ``--bm25-queries`` needs only: it is slow).

The methods are timed interleaved, need by need, in a rotating order, so that the noise of a
shared machine falls on all of them alike and the ratios compare like with like. Everything runs in
one process on one thread of work; nothing is parallelised.

Usage::

    .venv/bin/python benchmarks/latency.py --experts 20000 --queries 300 --bm25-queries 20 --seed 0 \\
        --out /tmp/latency.json
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import importlib.metadata
import json
import logging
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

K = 10
ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("numpy", "scipy", "pandas", "scikit-learn", "jieba", "opencc", "rank-bm25", "threadpoolctl", "matcher")

# --------------------------------------------------------------------------
# Phrase banks
# --------------------------------------------------------------------------

# fmt: off
# (the phrase banks are Chinese sentences, kept one bank a line)
# tag -> phrases of that field; the first phrase is the tag itself
TOPICS: dict[str, tuple[str, ...]] = {
    "个案管理": ("个案管理", "个案会谈", "个案会议", "需求评估", "服务计划", "跨部门转介", "结案评估", "一人一档", "多重困境家庭", "风险评估"),
    "小组工作": ("小组工作", "小组方案设计", "小组带领技巧", "小组动力", "支持小组", "成长小组", "互助小组", "小组评估"),
    "社区治理": ("社区治理", "基层治理", "居民议事会", "社区营造", "协商议事", "网格化服务", "社区社会组织培育", "五社联动"),
    "征迁安置": ("征迁安置", "回迁社区", "安置区", "社区融入", "邻里关系重建", "回迁居民适应", "安置房分配", "生计转型"),
    "乡村振兴": ("乡村振兴", "农村社会工作", "村庄发展", "农民合作社", "乡村治理", "返乡青年", "特色产业", "农村留守人员"),
    "儿童保护": ("儿童保护", "未成年人保护", "留守儿童", "困境儿童", "校园欺凌", "心语小屋", "护苗行动", "儿童友好社区", "亲子关系"),
    "养老服务": ("养老服务", "居家养老", "失能老人", "空巢老人", "为老服务", "长者食堂", "老年人照护", "助老志愿者", "一老一小"),
    "心理援助": ("心理援助", "心理疏导", "危机干预", "哀伤辅导", "情绪支持", "心理健康教育", "压力管理", "心理慰藉"),
    "督导": ("专业督导", "督导", "朋辈督导", "个别督导", "团体督导", "督导体系", "实务反思", "职业倦怠"),
    "品牌建设": ("品牌建设", "品牌项目", "案例提炼", "服务模式", "公益传播", "公众号运营", "视觉形象", "社会影响力"),
    "政策解读": ("政策解读", "政府购买服务", "民政政策", "实施方案", "补贴申请", "招投标", "惠民政策", "政策咨询"),
    "战略规划": ("战略规划", "发展规划", "SWOT分析", "机构定位", "三年规划", "理事会建设", "使命愿景", "年度计划"),
    "资源链接": ("资源链接", "资源整合", "基金会", "爱心企业", "慈善资源", "资源台账", "公益创投", "物资对接"),
    "能力建设": ("能力建设", "能力提升", "专业培训", "实务能力", "服务记录", "理论运用", "职业水平考试", "骨干培养"),
    "项目评估": ("项目评估", "成效评估", "项目设计", "逻辑模型", "指标体系", "第三方评估", "结项报告", "满意度调查"),
    "志愿服务": ("志愿服务", "志愿者管理", "志愿者招募", "志愿者激励", "时间银行", "志愿服务积分"),
    "社会救助": ("社会救助", "低保家庭", "临时救助", "特困人员", "救助对象", "兜底保障"),
    "残障服务": ("残障服务", "残疾人康复", "融合教育", "辅助就业", "无障碍环境", "家庭支持"),
}
COUNTIES = ("雄县", "容城县", "安新县")
PLACES = ("社区", "街道", "社工站", "乡镇", "安置区", "学校", "养老院", "容东片区", "雄东片区", "社会工作服务中心", "村委会")
SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕苏卢蒋蔡贾丁魏薛叶阎余潘杜戴夏钟汪田任姜范方石姚谭廖邹熊金陆郝孔白崔康毛邱秦江史顾侯邵孟龙万段雷钱汤尹黎易常武乔贺赖龚文"
GIVEN = "敏强芳磊静伟娜军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红鹏飞婷雪琳晨宇浩然欣怡思远嘉文博俊慧颖佳瑶子涵梓萱晓东海燕建国志刚丽丹"
TITLES = ("高级社会工作师", "中级社会工作师", "助理社会工作师", "国家二级心理咨询师", "副教授", "讲师", "资深督导", "项目总监")
ROLES = ("督导", "社工", "项目负责人", "培训讲师", "志愿者")
DIFFICULTIES = (
    "居民参与度不高", "服务对象需求复杂", "团队经验不足", "资金来源单一", "缺少评估工具", "社工流失严重",
    "项目成效难以呈现", "与政府部门沟通不畅", "转介渠道不畅", "活动形式单一", "服务对象不信任社工", "档案记录不规范",
)
HELPS = (
    "开展一次培训", "现场指导", "一对一督导", "帮忙把关方案", "提供政策咨询", "设计评估指标", "做一次实务工作坊",
    "协助撰写申报书", "梳理服务流程", "给出改进建议",
)
ORGS = ("社工站", "社会工作服务中心", "社工机构", "社区居委会", "公益组织", "志愿者协会", "社会组织孵化基地")

BIO_SENTENCES = (
    "从事社会工作{years}年，长期关注{p}与{q}。",
    "擅长{p}、{q}和{r}。",
    "曾在{county}{place}主持{p}项目，累计服务{n}人次。",
    "为{county}多家社工站提供{p}方面的专业支持。",
    "主讲《{p}实务》《{q}入门》等课程。",
    "参与编写{p}工作指引，熟悉{q}的相关要求。",
    "近年来带领团队开展{p}，探索{q}的本土化路径。",
    "持有{title}资格，",
    "在{p}领域有{years}年一线实务经验。",
    "多次获评优秀{role}。",
    "擅长运用{p}方法回应{q}需求。",
    "研究方向为{p}，发表过{q}相关论文{small}篇。",
    "曾参与{county}{p}试点，负责{q}工作。",
)
NEED_SENTENCES = (
    "{county}{org}在开展{p}时遇到{difficulty}的问题，",
    "我们想做{p}项目，但缺少{q}经验，",
    "{p}方面{difficulty}，",
    "{county}{place}的{p}服务{difficulty}，",
    "需要一位熟悉{p}和{q}的老师，",
    "希望专家{help}。",
    "请协助{help}，",
    "目前{q}推进困难，",
    "想了解{p}的做法，",
)
COURSES = ("《{p}实务》", "{p}专题培训", "{p}与{q}工作坊", "《{p}案例分析》")
# fmt: on


# --------------------------------------------------------------------------
# Generator
# --------------------------------------------------------------------------


class Generator:
    """Seeded generator of expert profiles (a targets frame) and needs; topics have Zipf-like popularity."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.labels = list(TOPICS)
        weights = 1.0 / np.arange(1, len(self.labels) + 1) ** 0.7
        self.popularity = weights / weights.sum()

    def _pick(self, items: tuple[str, ...] | list[str] | str) -> str:
        return items[int(self.rng.integers(len(items)))]

    def _topics(self, low: int, high: int) -> list[str]:
        count = int(self.rng.integers(low, high + 1))
        picked = self.rng.choice(len(self.labels), size=count, replace=False, p=self.popularity)
        return [self.labels[i] for i in picked]

    def _phrase(self, topics: list[str]) -> str:
        """A phrase of one of ``topics``, mostly of the first; now and then of any topic (noise)."""
        if self.rng.random() < 0.1:
            return self._pick(TOPICS[self._pick(self.labels)])
        topic = topics[0] if self.rng.random() < 0.6 else self._pick(topics)
        return self._pick(TOPICS[topic])

    def _fill(self, template: str, topics: list[str]) -> str:
        return template.format(
            p=self._phrase(topics),
            q=self._phrase(topics),
            r=self._phrase(topics),
            county=self._pick(COUNTIES),
            place=self._pick(PLACES),
            org=self._pick(ORGS),
            years=int(self.rng.integers(3, 26)),
            n=int(self.rng.integers(50, 5000)),
            small=int(self.rng.integers(2, 12)),
            title=self._pick(TITLES),
            role=self._pick(ROLES),
            difficulty=self._pick(DIFFICULTIES),
            help=self._pick(HELPS),
        )

    def _text(self, templates: tuple[str, ...], topics: list[str], low: int, high: int) -> str:
        """Sentences from ``templates`` until a length drawn from [low, high] is reached; cut at ``high``."""
        target = int(self.rng.integers(low, high + 1))
        text = ""
        while len(text) < target:
            text += self._fill(self._pick(templates), topics)
        text = text[:high]
        return text[:-1] + "。" if text[-1] in "，、" else text

    def expert(self, number: int) -> dict[str, Any]:
        topics = self._topics(1, 3)
        bio = self._text(BIO_SENTENCES, topics, 50, 300)
        courses = [self._fill(self._pick(COURSES), topics) for _ in range(int(self.rng.integers(0, 3)))]
        roll = self.rng.random()
        counties = [] if roll < 0.1 else sorted(self.rng.choice(COUNTIES, size=1 if roll < 0.8 else 2, replace=False))
        return {
            "target_type": "expert",
            "id": f"X{number:06d}",
            "name": self._pick(SURNAMES) + "".join(self._pick(GIVEN) for _ in range(int(self.rng.integers(1, 3)))),
            "texts": [f"专长：{'、'.join(topics)}", bio, *courses],
            "tags": topics,
            "counties": [str(c) for c in counties],
            "org_id": None,
            "capacity": int(self.rng.integers(1, 6)),
            "load": 0,
            "available": True,
        }

    def experts(self, n: int) -> pd.DataFrame:
        return pd.DataFrame([self.expert(i + 1) for i in range(n)])

    def need(self, number: int) -> dict[str, Any]:
        topics = self._topics(1, 2)
        return {
            "id": f"N{number:05d}",
            "text": self._text(NEED_SENTENCES, topics, 20, 120),
            "tags": topics,
            "counties": [] if self.rng.random() < 0.1 else [self._pick(COUNTIES)],
        }

    def needs(self, n: int, start: int = 1) -> list[dict[str, Any]]:
        return [self.need(start + i) for i in range(n)]


# --------------------------------------------------------------------------
# Scorers
# --------------------------------------------------------------------------


def top_indices(scores: np.ndarray, k: int = K) -> np.ndarray:
    """Indices of the ``k`` largest scores, best first (argpartition, then sort those)."""
    top = np.argpartition(-scores, k - 1)[:k] if len(scores) > k else np.arange(len(scores))
    return top[np.argsort(-scores[top], kind="stable")]


class Reference:
    """Plain char TF-IDF: one transform, one sparse product, argpartition.

    ``X @ q.T`` with the sparse query is a sparse-times-sparse product: scipy walks every stored
    entry of ``X``, twice. :meth:`dense_query` is the same scorer with the query made dense first, so
    that the one product is a sparse matrix times a dense vector (one pass, no output structure).
    """

    def __init__(self, docs: list[str], ids: np.ndarray) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(1, 2))
        self.X = self.vectorizer.fit_transform(docs)
        self.ids = ids

    def __call__(self, need: dict[str, Any]) -> list[str]:
        q = self.vectorizer.transform([need["text"]])
        scores = (self.X @ q.T).toarray().ravel()
        return list(self.ids[top_indices(scores)])

    def dense_query(self, need: dict[str, Any]) -> list[str]:
        q = self.vectorizer.transform([need["text"]])
        scores = self.X @ q.toarray().ravel()
        return list(self.ids[top_indices(scores)])


class BM25:
    """rank-bm25 ``BM25Okapi`` on the matcher's own tokens (``segment(normalise(text))``)."""

    def __init__(self, docs: list[str], ids: np.ndarray) -> None:
        from rank_bm25 import BM25Okapi

        from matcher.text.normalise import normalise
        from matcher.text.segment import segment

        self.tokens = lambda text: segment(normalise(text))
        self.bm25 = BM25Okapi([self.tokens(d) for d in docs])
        self.ids = ids

    def __call__(self, need: dict[str, Any]) -> list[str]:
        scores = self.bm25.get_scores(self.tokens(need["text"]))
        return list(self.ids[top_indices(np.asarray(scores))])


def matcher_recommend(model: Any) -> Callable[[dict[str, Any]], list[str]]:
    def run(need: dict[str, Any]) -> list[str]:
        query = {"text": need["text"], "tags": need["tags"], "counties": need["counties"]}
        return [r["id"] for r in model.recommend(query, k=K, target_types=["expert"])["expert"]]

    return run


def matcher_match(model: Any) -> Callable[[pd.DataFrame], list[str]]:
    def run(frame: pd.DataFrame) -> list[str]:
        return list(model.match(frame, k=K, target_types=["expert"])["target_id"])

    return run


# --------------------------------------------------------------------------
# Measurement
# --------------------------------------------------------------------------


def summary(ms: list[float]) -> dict[str, float]:
    values = np.asarray(ms)
    return {
        "n": len(values),
        "median_ms": float(np.median(values)),
        "p99_ms": float(np.percentile(values, 99)),
        "mean_ms": float(values.mean()),
        "min_ms": float(values.min()),
        "max_ms": float(values.max()),
    }


def tag_hit_rate(results: list[list[str]], needs: list[dict[str, Any]], tags: dict[str, set[str]]) -> float:
    """Share of returned experts that carry the need's first tag (a sanity check, not a quality metric)."""
    hits = total = 0
    for found, need in zip(results, needs, strict=True):
        hits += sum(need["tags"][0] in tags[e] for e in found)
        total += len(found)
    return hits / total if total else float("nan")


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    try:
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = None
    sources = hashlib.sha256()
    for path in sorted((ROOT / "matcher").rglob("*.py")):
        sources.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    try:
        from threadpoolctl import threadpool_info

        threads = [{k: p.get(k) for k in ("user_api", "internal_api", "num_threads")} for p in threadpool_info()]
    except ImportError:
        threads = None
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu": cpu,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "packages": versions,
        "threadpools": threads,
        "matcher_commit": commit,
        "matcher_sources_sha256": sources.hexdigest()[:16],  # the working tree may be dirty
    }


def timed(label: str, fn: Callable[[], Any]) -> tuple[Any, float]:
    print(f"[latency] {label} ...", file=sys.stderr, flush=True)
    start = time.perf_counter()
    value = fn()
    seconds = time.perf_counter() - start
    print(f"[latency] {label}: {seconds:.1f} s", file=sys.stderr, flush=True)
    return value, seconds


def run(args: argparse.Namespace) -> dict[str, Any]:
    try:
        import rank_bm25  # noqa: F401
    except ImportError:
        raise SystemExit("rank-bm25 is not installed: .venv/bin/pip install -e '.[test]'") from None
    from matcher.matching.estimator import build_matcher

    logging.getLogger("jieba").setLevel(logging.WARNING)
    info = machine()
    load_before = os.getloadavg()
    generator = Generator(args.seed)
    frame, _ = timed(f"generate {args.experts} experts", lambda: generator.experts(args.experts))
    needs = generator.needs(args.queries)
    warmup = generator.needs(args.warmup, start=args.queries + 1)
    ids = frame["id"].to_numpy(dtype=object)
    docs = ["\n".join(t for t in texts if t) for texts in frame["texts"]]  # what matcher's "concat" sees
    expert_tags = dict(zip(frame["id"], map(set, frame["tags"]), strict=True))

    model, fit_matcher = timed("fit matcher", lambda: build_matcher().fit(frame))
    reference, fit_reference = timed("fit reference", lambda: Reference(docs, ids))
    bm25, fit_bm25 = timed("build rank-bm25 (jieba tokens)", lambda: BM25(docs, ids))

    needs_all = needs + warmup  # timed needs first, then the warm-up needs
    frames = [pd.DataFrame([{**need, "org_id": None}]) for need in needs_all]
    recommend, match = matcher_recommend(model), matcher_match(model)
    methods: dict[str, Callable[[int], list[str]]] = {
        "matcher.recommend": lambda i: recommend(needs_all[i]),
        "matcher.match": lambda i: match(frames[i]),
        "reference": lambda i: reference(needs_all[i]),
        "reference, dense q": lambda i: reference.dense_query(needs_all[i]),
        "rank-bm25": lambda i: bm25(needs_all[i]),
    }

    print(f"[latency] warm-up on {args.warmup} needs", file=sys.stderr, flush=True)
    for i in range(args.queries, args.queries + args.warmup):
        for name, method in methods.items():
            if name != "rank-bm25" or i < args.queries + 2:
                method(i)

    print(f"[latency] timing {args.queries} needs, interleaved", file=sys.stderr, flush=True)
    names = list(methods)
    times: dict[str, list[float]] = {name: [] for name in names}
    results: dict[str, list[list[str]]] = {name: [] for name in names}
    gc.collect()
    for i in range(args.queries):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            if name == "rank-bm25" and i >= args.bm25_queries:
                continue
            method = methods[name]
            start = time.perf_counter_ns()
            found = method(i)
            elapsed = time.perf_counter_ns() - start
            times[name].append(elapsed / 1e6)
            results[name].append(found)
        if (i + 1) % 50 == 0:
            print(f"[latency] {i + 1}/{args.queries}", file=sys.stderr, flush=True)
    load_after = os.getloadavg()

    stats = {name: summary(times[name]) for name in names}
    for name in names:
        stats[name]["tag_hit_at_10"] = tag_hit_rate(results[name], needs[: len(results[name])], expert_tags)
    med = {name: stats[name]["median_ms"] for name in names}
    p99 = {name: stats[name]["p99_ms"] for name in names}
    ratios: dict[str, dict[str, float]] = {}
    for mine in MATCHER:
        for other in REFERENCES:
            ratios[f"{mine} / {other}"] = {"median": med[mine] / med[other], "p99": p99[mine] / p99[other]}
    for mine in MATCHER:
        same_needs = float(np.median(times[mine][: args.bm25_queries]))  # the needs rank-bm25 was timed on
        ratios[f"rank-bm25 / {mine}"] = {
            "median": med["rank-bm25"] / med[mine],
            "p99": p99["rank-bm25"] / p99[mine],
            "median_same_needs": med["rank-bm25"] / same_needs,
        }
    goals = {}
    for other in REFERENCES:
        for mine in MATCHER:
            goals[f"{mine} no slower than {other} (median)"] = ratios[f"{mine} / {other}"]["median"] <= 1.0
    goals["matcher.recommend at least 100× faster than rank-bm25 (median)"] = (
        ratios["rank-bm25 / matcher.recommend"]["median"] >= 100
    )
    index = model.index_["expert"]
    return {
        "config": {
            "experts": args.experts,
            "queries": args.queries,
            "bm25_queries": args.bm25_queries,
            "warmup": args.warmup,
            "seed": args.seed,
            "k": K,
            "mean_profile_chars": float(np.mean([len(d) for d in docs])),
            "mean_need_chars": float(np.mean([len(n["text"]) for n in needs])),
            "mean_need_tokens": float(np.mean([len(bm25.tokens(n["text"])) for n in needs])),
            "features_matcher": int(model.vectorizer_.n_features_out_),
            "features_reference": len(reference.vectorizer.vocabulary_),
            "nnz_matcher": int(index.postings.nnz),
            "nnz_reference": int(reference.X.nnz),
        },
        "machine": {**info, "loadavg_before": load_before, "loadavg_after": load_after},
        "build_seconds": {"matcher.fit": fit_matcher, "reference": fit_reference, "rank-bm25": fit_bm25},
        "latency": stats,
        "ratios": ratios,
        "goals": goals,
    }


MATCHER = ("matcher.recommend", "matcher.match")
REFERENCES = ("reference", "reference, dense q")
WHAT = {
    "matcher.recommend": "`recommend(need, k=10)`: scores, rules, top 10 and reasons",
    "matcher.match": "`match(one_row_frame, k=10)`: scores only, as a frame",
    "reference": "char 1–2-gram TF-IDF, `X @ q.T` (sparse × sparse), argpartition",
    "reference, dense q": "the same, `X @ q.toarray().ravel()` (sparse × dense)",
    "rank-bm25": "`BM25Okapi.get_scores` on jieba tokens, argpartition",
}


def markdown(report: dict[str, Any]) -> str:
    config, info, ratios = report["config"], report["machine"], report["ratios"]
    lines = [
        f"{config['experts']} experts, {config['queries']} needs (rank-bm25: first {config['bm25_queries']}), "
        f"seed {config['seed']}, k = {config['k']}; {info['nproc']} CPUs ({info['cpu']}), Python {info['python']}, "
        f"{info['date']}",
        "",
        "| method | timed per need | needs | median ms | p99 ms | mean ms | tag hit@10 |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, stats in report["latency"].items():
        lines.append(
            f"| {name} | {WHAT[name]} | {stats['n']} | {stats['median_ms']:.2f} | {stats['p99_ms']:.2f} "
            f"| {stats['mean_ms']:.2f} | {stats['tag_hit_at_10']:.2f} |"
        )
    lines += [
        "",
        "Ratios, same run (median; p99):",
        "",
        *[
            f"- {pair}: {r['median']:.3g}×; {r['p99']:.3g}×"
            + (f" ({r['median_same_needs']:.3g}× on the same needs)" if "median_same_needs" in r else "")
            for pair, r in ratios.items()
        ],
        "",
        "Goals:",
        "",
        *[f"- {'PASS' if ok else 'FAIL'}: {goal}" for goal, ok in report["goals"].items()],
        "",
        "Build: "
        + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in report["build_seconds"].items())
        + f". Features (stored entries): matcher {config['features_matcher']} ({config['nnz_matcher']}), "
        f"reference {config['features_reference']} ({config['nnz_reference']}). "
        f"Means: profile {config['mean_profile_chars']:.0f} chars, need {config['mean_need_chars']:.0f} chars, "
        f"{config['mean_need_tokens']:.1f} jieba tokens. "
        f"Load average {info['loadavg_before'][0]:.2f} before, {info['loadavg_after'][0]:.2f} after.",
    ]
    return "\n".join(lines)


def emit(text: str, report: dict[str, Any], out: Path | None) -> None:
    """Print the Markdown ``text``; with ``out``, also write the full ``report`` there as JSON."""
    print(text)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experts", type=int, default=20000, help="size of the generated expert library")
    parser.add_argument("--queries", type=int, default=300, help="needs timed for matcher and the reference")
    parser.add_argument("--bm25-queries", type=int, default=20, help="needs timed for rank-bm25 (the first ones)")
    parser.add_argument("--warmup", type=int, default=20, help="extra needs run untimed first")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generator")
    parser.add_argument("--out", type=Path, default=None, help="also write the full report as JSON here")
    args = parser.parse_args(argv)
    if args.experts < K or args.queries < 1 or not 1 <= args.bm25_queries <= args.queries or args.warmup < 1:
        parser.error("need --experts >= 10, --queries >= 1, 1 <= --bm25-queries <= --queries, --warmup >= 1")
    report = run(args)
    emit(markdown(report), report, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
