"""The one redaction of personal data (phone, ID card, e-mail and bank card numbers), and where it is applied.

Need texts are stored as the coordinator wrote them. :func:`redact` produces the copies that go into
the matching index, record views and match responses for roles that may not see personal data, XLSX
exports, logs, batch rejects and assignment outputs: labels such as ``[电话]`` where the numbers were.
Full-width characters are folded first (``１３８１２３４５６７８``, ``zhang＠example.com``), and numbers
grouped by spaces, dashes or dots (``138.1234.5678``) are found too.

What goes into the model (the target texts of :func:`matcher.inputs.frames.targets_frame`, the needs
of :func:`matcher.inputs.frames.needs_frame` and the need of each match request) passes through
:func:`index_text`, so these numbers are never vectorised, never indexed, never shown as matched terms
and never influence a score. What is shown of a need (``need.text`` of a match) is :func:`redact`.
Responses to roles that may not see contact details pass through :func:`redact_item`.
"""

from __future__ import annotations

import re
from typing import Any

from matcher.text.normalise import fold_full_width

__all__ = ["CONTACT_FIELDS", "HIDDEN", "PLACEHOLDERS", "index_text", "redact", "redact_item", "shown_index_text"]

# Order matters: longer digit patterns first, so an ID card number is not taken for a phone number.
_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("[邮箱]", re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")),
    # 18-digit resident ID (6-digit region, birth date 18xx-20xx, 3 digits, check digit or X)
    (
        "[身份证号]",
        re.compile(
            r"(?<![0-9])[1-9][0-9]{5}(?:18|19|20)[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])[0-9]{3}[0-9Xx](?![0-9])"
        ),
    ),
    # bank cards: 16-19 digits, optionally grouped by spaces or dashes in fours
    ("[银行卡号]", re.compile(r"(?<![0-9])(?:[0-9]{4}[ .-]?){3}[0-9]{4}(?:[ .-]?[0-9]{1,3})?(?![0-9])")),
    # mainland mobile numbers, optionally +86 / 0086 and separators: 138 1234 5678, 138-1234-5678, 138.1234.5678
    ("[电话]", re.compile(r"(?<![0-9])(?:\+?86[ .-]?|0086[ .-]?)?1[3-9][0-9](?:[ .-]?[0-9]{4}){2}(?![0-9])")),
    # landlines with an area code: 0312-1234567, (0312)12345678, 0312.1234567
    ("[电话]", re.compile(r"(?<![0-9])(?:\(0[0-9]{2,3}\)|0[0-9]{2,3}[.-])[ ]?[2-9][0-9]{6,7}(?![0-9])")),
)
#: The labels :func:`redact` puts where the numbers were, each once.
PLACEHOLDERS = tuple(dict.fromkeys(label for label, _ in _PATTERNS))
# Every pattern holds a digit or an @ (ASCII or full-width): a text with neither has nothing to redact.
_MAY_HOLD = re.compile("[0-9@\uff10-\uff19\uff20]")

#: Expert fields that only roles with the ``contacts`` permission see.
CONTACT_FIELDS = ("phone", "email")
#: What :func:`shown_index_text` shows where the index saw a mask.
HIDDEN = "[已隐去]"
_MASKS = {label: label[0] + "*" * (len(label) - 2) + label[-1] for label in PLACEHOLDERS}


def redact(text: str) -> str:
    """``text`` with phone, ID card, e-mail and bank card numbers replaced by placeholders like ``[电话]``.

    Numbers are looked for in the text with full-width characters folded (``１３８…``, ``＠``); what
    is not replaced keeps its characters as written. A non-text value (None, a number) is returned
    as it is.
    """
    if not isinstance(text, str) or not text or not _MAY_HOLD.search(text):
        return text
    for label, pattern in _PATTERNS:
        folded = fold_full_width(text)  # one character for one: spans found in it hold in ``text``
        parts, start = [], 0
        for found in pattern.finditer(folded):
            parts += [text[start : found.start()], label]
            start = found.end()
        if parts:
            text = "".join(parts) + text[start:]
    return text


def index_text(text: str) -> str:
    """``text`` as the matching index sees it: :func:`redact` with each label masked.

    ``[电话]`` becomes ``[**]``: the same length (so character spans computed on one text hold for
    the other), but punctuation only, which the vectoriser ignores: neither the numbers nor the
    labels that replace them add to any score.
    """
    text = redact(text)
    if not isinstance(text, str) or "[" not in text:
        return text
    for label, mask in _MASKS.items():
        text = text.replace(label, mask)
    return text


def shown_index_text(text: str) -> str:
    """An :func:`index_text` for reading: each mask (``[**]``) as ``[已隐去]``, since masks do not say what they hid."""
    for mask in set(_MASKS.values()):
        text = text.replace(mask, HIDDEN)
    return text


def redact_item(value: Any, *, drop: tuple[str, ...] = CONTACT_FIELDS) -> Any:
    """A response item for a role without contacts: the ``drop`` keys removed, every text redacted.

    Works on nested dicts and lists; numbers, booleans and None are kept.
    """
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_item(v, drop=drop) for k, v in value.items() if k not in drop}
    if isinstance(value, list):
        return [redact_item(v, drop=drop) for v in value]
    return value
