"""What an object store's listing yields (``ObjectStore.list_objects``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    #: when the object was last written (UTC)
    modified: datetime


#: objects fetched per page of a listing
PAGE = 1000
