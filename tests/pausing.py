"""Run the ``matcher`` command with a pause at one point of its work, so that a test can kill it there.

``python tests/pausing.py POINT SECONDS ARGS...`` runs ``matcher ARGS...`` in this process with
POINT wrapped: after it, one line on stderr says where the run is, then it sleeps SECONDS.

* ``chunk``: after each chunk of ``matcher batch`` is stored (``k of n chunks done``);
* ``import``: inside the transaction of ``matcher import``, after its audit record (``pausing``).

The pause lives here, in the tests, not in the package: the product has no test hooks.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any


def _after(owner: Any, name: str, say: Callable[..., str], seconds: float) -> None:
    """Wrap ``owner.name`` so that each call is followed by ``say(*args)`` on stderr and a sleep."""
    original = getattr(owner, name)

    def paused(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        print(f"matcher: paused: {say(*args)}", file=sys.stderr, flush=True)
        time.sleep(seconds)
        return result

    setattr(owner, name, paused)


def main(argv: list[str]) -> None:
    point, seconds, *args = argv
    if point == "chunk":
        from matcher.jobs.chunks import PartStore

        def chunk(store: PartStore, *_: Any) -> str:
            stored = sum(1 for path in store.folder.glob("*.parquet") if path.stem.isdigit())
            return f"{stored} of {store.state['chunks']} chunks done"

        _after(PartStore, "put", chunk, float(seconds))
    elif point == "import":
        from matcher.store import audit

        _after(audit, "record", lambda *_: "pausing inside the import transaction", float(seconds))
    else:
        raise SystemExit(f"pausing.py: unknown point {point!r} (chunk or import)")
    from matcher.cli import main as matcher

    matcher(args)


if __name__ == "__main__":
    main(sys.argv[1:])
