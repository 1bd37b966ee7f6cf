#!/usr/bin/env python3
"""Native word segmenters against jieba: the same words, token for token, and how much faster.

jieba (with matcher's user dictionary, its HMM for unknown words and its stop words) is the
reference. Each candidate cuts the same distinct blocks (jieba cuts a text into blocks of Chinese
characters, letters and digits and segments each on its own, so comparing blocks compares texts):

* ``matcher (rjieba)``: what :func:`matcher.text.segment.segment` does where rjieba is installed (jieba-rs,
  jieba's blocks, the user dictionary with jieba's dictionary total);
* ``rjieba, whole text``: ``rjieba.Jieba().cut(text)`` on whole texts with the user words added,
  without matcher's block handling;
* ``jieba_fast_dat``: ``jieba_fast_dat.Tokenizer`` with the user words added, when installed.

The texts: every Chinese cell of the embedded libraries (``data/*.csv``), and the experts and needs
of a perf corpus (``--corpus DIR`` holding ``experts.txt`` and ``needs.txt``, one text a line, as
``../shared/bench/perf/gen.py`` writes them), each normalised, both as a whole and as the CJK view the
vectoriser segments. Times are for cutting every distinct block once, one process.

Usage::

    .venv/bin/python benchmarks/segmenters.py --corpus /tmp/perf/medium --out /tmp/segmenters.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def data_texts() -> list[str]:
    """Every cell of ``data/*.csv`` that holds a Chinese character."""
    texts = []
    for path in sorted((ROOT / "data").glob("*.csv")):
        frame = pd.read_csv(path, dtype=str)
        for column in frame.columns:
            texts.extend(v for v in frame[column].dropna() if any("\u4e00" <= c <= "\u9fff" for c in v))
    return texts


def corpus_texts(folder: Path) -> list[str]:
    texts = []
    for name in ("experts.txt", "needs.txt"):
        texts.extend((folder / name).read_text(encoding="utf-8").splitlines())
    return texts


def distinct_blocks(texts: Iterable[str]) -> list[str]:
    """jieba's blocks of the normalised texts and of their CJK views, each once, in order of appearance."""
    from matcher.text.normalise import normalise
    from matcher.text.scripts import script_views
    from matcher.text.segment import text_blocks

    seen: dict[str, None] = {}
    for text in texts:
        doc = normalise(text)
        for view in (doc, script_views(doc)[0]):
            for block in text_blocks(view):
                seen.setdefault(block, None)
    return list(seen)


def kept(words: Iterable[str]) -> list[str]:
    from matcher.text.segment import _MEANINGLESS, _stop_words

    stop = _stop_words()
    return [w for w in words if w not in stop and not _MEANINGLESS.match(w)]


def candidates() -> dict[str, Callable[[str], list[str]] | str]:
    """name -> cut function (every word of a block), or why it is not measured."""
    from matcher.text import segment as text

    found: dict[str, Callable[[str], list[str]] | str] = {}
    if text._native() is not None:
        found["matcher (rjieba)"] = text._native_cut
    else:
        found["matcher (rjieba)"] = "rjieba not installed (or MATCHER_SEGMENTER=jieba)"
    try:
        import rjieba

        plain = rjieba.Jieba()
        for word, freq in text._user_words():
            plain.add_word(word, freq, None)
        found["rjieba, whole text"] = lambda block: plain.cut(block, True)
    except ImportError:
        found["rjieba, whole text"] = "not installed"
    try:
        import jieba_fast_dat

        fast = jieba_fast_dat.Tokenizer()
        fast.initialize()
        for word, freq in text._user_words():
            fast.add_word(word, freq)
        found["jieba_fast_dat"] = lambda block: list(fast.cut(block))
    except ImportError:
        found["jieba_fast_dat"] = "not installed"
    return found


def compare(name: str, blocks: list[str]) -> dict[str, Any]:
    from matcher.text import segment as text

    reference_cut = text._tokenizer().cut
    started = time.perf_counter()
    reference = [kept(reference_cut(b)) for b in blocks]
    jieba_seconds = time.perf_counter() - started
    tokens = sum(map(len, reference))
    result: dict[str, Any] = {
        "texts": name,
        "blocks": len(blocks),
        "characters": sum(map(len, blocks)),
        "jieba_tokens": tokens,
        "jieba_seconds": round(jieba_seconds, 3),
        "candidates": {},
    }
    for label, cut in candidates().items():
        if isinstance(cut, str):
            result["candidates"][label] = {"skipped": cut}
            continue
        started = time.perf_counter()
        words = [kept(cut(b)) for b in blocks]
        seconds = time.perf_counter() - started
        differing = [i for i, (a, b) in enumerate(zip(reference, words, strict=True)) if a != b]
        wrong_tokens = sum(
            len(set(enumerate(reference[i])) ^ set(enumerate(words[i]))) for i in differing
        )
        result["candidates"][label] = {
            "seconds": round(seconds, 3),
            "speed_up": round(jieba_seconds / seconds, 2) if seconds else None,
            "tokens": sum(map(len, words)),
            "blocks_differing": len(differing),
            "tokens_differing": wrong_tokens,
            "examples": [
                {"block": blocks[i][:40], "jieba": reference[i][:12], label: words[i][:12]} for i in differing[:3]
            ],
        }
    return result


def markdown(results: list[dict[str, Any]]) -> str:
    lines = [
        "| texts | distinct blocks | jieba tokens | segmenter | blocks differing | tokens differing | s (jieba s) | × jieba |",
        "|---|---:|---:|---|---:|---:|---:|---:|",
    ]
    for r in results:
        for label, c in r["candidates"].items():
            if "skipped" in c:
                lines.append(f"| {r['texts']} | {r['blocks']:,} | {r['jieba_tokens']:,} | {label} | – | – | – | {c['skipped']} |")
                continue
            lines.append(
                f"| {r['texts']} | {r['blocks']:,} | {r['jieba_tokens']:,} | {label} | {c['blocks_differing']:,} "
                f"| {c['tokens_differing']:,} | {c['seconds']:.2f} ({r['jieba_seconds']:.2f}) | {c['speed_up']:.1f}× |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, action="append", default=[], help="folder with experts.txt, needs.txt")
    parser.add_argument("--out", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    sets = [("data/*.csv", data_texts())] + [(f"perf {c.name}", corpus_texts(c)) for c in args.corpus]
    results = []
    for name, texts in sets:
        print(f"[segmenters] {name}: {len(texts)} texts", file=sys.stderr, flush=True)
        results.append({"n_texts": len(texts), **compare(name, distinct_blocks(texts))})
    from matcher.text.segment import segmenter

    report = {"segmenter": segmenter(), "loadavg": os.getloadavg(), "results": results}
    print(markdown(results))
    if args.out:
        args.out.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
