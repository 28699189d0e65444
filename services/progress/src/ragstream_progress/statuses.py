"""The vocabulary of job state: statuses, their order, and the stage each belongs to.

A job's status only moves up in ``RANK`` within one run (``uploaded → released → parsing →
parsed → embedding → indexed``, or ``failed``; a delete job ``deleting → deleted``).
``indexed`` outranks ``failed`` (a replayed job that succeeds is done) and ``cancelled``
outranks everything. A new run (a retry) starts again from the bottom.
"""

from __future__ import annotations

RANK = {
    "uploaded": 0,
    "deleting": 0,
    "released": 1,
    "parsing": 2,
    "parsed": 3,
    "embedding": 4,
    "failed": 9,
    "indexed": 10,
    "deleted": 10,
    "cancelled": 11,
}
#: statuses after which nothing more happens to a job (until it is retried)
TERMINAL = frozenset({"indexed", "failed", "deleted", "cancelled"})

_STAGE_OF_STATUS = {
    "uploaded": "queued",
    "released": "queued",
    "parsing": "parsing",
    "parsed": "embedding",
    "embedding": "embedding",
    "indexed": "indexed",
    "deleting": "deleting",
    "deleted": "deleted",
}


def stage_of(status: str, error_stage: str | None) -> str:
    """The pipeline stage a job is in (``queued``, ``parsing``, ``embedding``, ``indexed``, ...);
    a failed or cancelled job's is the stage it stopped in."""
    if status in ("failed", "cancelled"):
        return error_stage or ""
    return _STAGE_OF_STATUS[status]
