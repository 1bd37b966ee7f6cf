"""The one redaction of personal data in free text: phone, ID card, e-mail and bank card numbers.

Need texts keep what the coordinator wrote; :func:`redact` produces the copies that go into the
matching index (through :func:`matcher.text.privacy.index_text`), record views and match responses for
roles that may not see personal data, XLSX exports, logs, batch rejects and assignment outputs.
Full-width characters are folded first (``１３８１２３４５６７８``, ``zhang＠example.com``), and
numbers grouped by spaces, dashes or dots (``138.1234.5678``) are found too.
"""

from __future__ import annotations

import re

__all__ = ["PLACEHOLDERS", "redact"]

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
PLACEHOLDERS = tuple(dict.fromkeys(label for label, _ in _PATTERNS))
#: Full-width ASCII (U+FF01-U+FF5E) and the ideographic space to their ASCII forms: one character
#: for one, as NFKC maps them, so that ``１３８ １２３４ ５６７８`` is recognised as a phone number.
_FULL_WIDTH = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}
_HAS_FULL_WIDTH = re.compile("[\uff01-\uff5e\u3000]")
# Every pattern holds a digit or an @ (ASCII or full-width): a text with neither has nothing to redact.
_MAY_HOLD = re.compile("[0-9@\uff10-\uff19\uff20]")


def redact(text: str) -> str:
    """``text`` with phone, ID card, e-mail and bank card numbers replaced by placeholders like ``[电话]``.

    Numbers are looked for in the text with full-width characters folded (``１３８…``, ``＠``); what
    is not replaced keeps its characters as written. A non-text value (None, a number) is returned
    as it is.
    """
    if not isinstance(text, str) or not text or not _MAY_HOLD.search(text):
        return text
    for label, pattern in _PATTERNS:
        # one character for one: spans hold in ``text`` (str.translate is slow: only where there is something to fold)
        folded = text.translate(_FULL_WIDTH) if _HAS_FULL_WIDTH.search(text) else text
        parts, start = [], 0
        for found in pattern.finditer(folded):
            parts += [text[start : found.start()], label]
            start = found.end()
        if parts:
            text = "".join(parts) + text[start:]
    return text
