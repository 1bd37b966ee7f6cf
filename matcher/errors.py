"""Typed errors shared by the rooms of the package; the CLI and the web layer map them once each.

A room's own errors derive from these and live with it (``TableError`` in :mod:`matcher.inputs.files`,
``AssignmentError`` in :mod:`matcher.jobs.assign.solver`, ``EngineError`` in :mod:`matcher.jobs.executors`…).
"""

from __future__ import annotations


class MatcherError(Exception):
    """Base class of every error this package raises on purpose."""


class LibraryError(MatcherError, ValueError):
    """A library file or record is missing, unreadable or invalid.

    The message names what is wrong: the file, the row as the user sees it, and the field.
    """


class FieldError(LibraryError):
    """Invalid values of a record or request: ``errors`` lists ``{"field", "message"}``; each message names its field."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        self.errors = list(errors)
        super().__init__("; ".join(e["message"] for e in self.errors) or "invalid values")


class ModelError(MatcherError):
    """A model version is missing, corrupt or incompatible."""


class NotFoundError(MatcherError, LookupError):
    """A requested record (need, target, model version) does not exist."""


class ConflictError(MatcherError):
    """The request conflicts with the stored state: an id that exists, a fully booked expert…"""


class DatabaseUnavailableError(MatcherError):
    """The database cannot be reached; the request may succeed later."""


class BatchError(MatcherError, ValueError):
    """A batch run cannot start or finish: bad arguments, parameters or output path, or a resume with other inputs."""
