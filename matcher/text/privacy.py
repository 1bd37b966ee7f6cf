"""Where personal data is redacted: the matching index, and responses to roles without contacts.

Need texts are stored as the coordinator wrote them. What goes into the model (the target texts of
:func:`matcher.inputs.frames.targets_frame`, the needs of :func:`matcher.inputs.frames.needs_frame` and the need
of each match request) passes through :func:`index_text`, so phone, ID card, e-mail and bank card
numbers are never vectorised, never indexed, never shown as matched terms and never influence a
score. What is shown of a need (``need.text`` of a match) is :func:`matcher.text.redact.redact` (the one
redaction, full-width folding first), with labels such as ``[电话]`` where the numbers were. Responses to roles that may not see contact details pass
through :func:`redact_item`.
"""

from __future__ import annotations

from typing import Any

from matcher.text.redact import PLACEHOLDERS, redact

__all__ = ["CONTACT_FIELDS", "HIDDEN", "index_text", "redact_item", "shown_index_text"]

#: Expert fields that only roles with the ``contacts`` permission see.
CONTACT_FIELDS = ("phone", "email")


HIDDEN = "[已隐去]"
_MASKS = {label: label[0] + "*" * (len(label) - 2) + label[-1] for label in PLACEHOLDERS}


def index_text(text: str) -> str:
    """``text`` as the matching index sees it: :func:`~matcher.text.redact.redact` with each label masked.

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
