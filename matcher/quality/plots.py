"""The PNG charts of ``matcher evaluate`` and ``matcher gaps`` (matplotlib, imported when drawing: heavy)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["plot_gaps", "plot_ndcg"]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fonts = ["Noto Sans CJK SC", "WenQuanYi Zen Hei", "SimHei"]
    manager = matplotlib.font_manager.fontManager
    if not {font.name for font in manager.ttflist} & set(fonts):
        # a font cache built before a CJK font was installed does not list it: add the files on disk
        for path in matplotlib.font_manager.findSystemFonts():
            if "CJK" in path or "wqy" in path.lower():
                manager.addfont(path)
    plt.rcParams["font.sans-serif"] = [*fonts, "DejaVu Sans"]
    plt.rcParams["axes.unicode_minus"] = False
    return plt


def plot_ndcg(rows: list[dict], path: Path) -> None:
    """nDCG@k against k, one line (with its confidence band) per dataset and method, as a PNG."""
    plt = _pyplot()
    frame = pd.DataFrame(rows)
    # paired differences ("a-b" methods) are gains, not curves of nDCG
    frame = frame.loc[
        (frame["metric"] == "nDCG") & (frame["k"] != "") & ~frame["method"].str.contains("-", regex=False)
    ]
    datasets = list(dict.fromkeys(frame["dataset"]))
    figure, axes = plt.subplots(1, max(1, len(datasets)), figsize=(5.5 * max(1, len(datasets)), 4), squeeze=False)
    for axis, dataset in zip(axes[0], datasets, strict=False):
        part = frame.loc[frame["dataset"] == dataset]
        for method, group in part.groupby("method", sort=False):
            group = group.sort_values("k")
            ks = group["k"].astype(int)
            axis.plot(ks, group["value"], marker="o", label=method)
            axis.fill_between(ks, group["ci_low"].astype(float), group["ci_high"].astype(float), alpha=0.15)
        axis.set_title(f"nDCG@k: {dataset}")
        axis.set_xlabel("k")
        axis.set_ylabel("nDCG@k")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_gaps(summary: pd.DataFrame, path: Path) -> None:
    """Weak needs by category and by county, as horizontal bar charts in one PNG."""
    plt = _pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(11, 6), gridspec_kw={"width_ratios": [3, 1]})
    for axis, dimension in zip(axes, ("category", "county"), strict=True):
        part = summary.loc[summary["dimension"] == dimension].sort_values("weak")
        axis.barh(part["value"], part["weak"], color="#c0504d", label="weak")
        axis.barh(part["value"], part["needs"] - part["weak"], left=part["weak"], color="#9bbb59", label="well matched")
        axis.set_title(f"needs by {dimension}")
        axis.set_xlabel("needs")
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
