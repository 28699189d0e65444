"""URLs of web sources: which are accepted, their one spelling, their scope and their file names.

Guarantees: ``check_url`` accepts only absolute http(s) URLs with a host and no credentials;
``normalize_url`` gives one spelling per page (fragment dropped, scheme and host lower-case,
default port and dot segments removed), so a crawl fetches each page once; ``page_file_name``
gives distinct URLs distinct names, and the same URL the same name on every crawl, so that a
changed page becomes a new version of the same document.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import urljoin, urlsplit, urlunsplit

from ragstream_core.errors import InvalidInput
from ragstream_gateway.handlers import clean_file_name
from ragstream_gateway.media import ACCEPTED

MAX_URL_LENGTH = 2048
_SCHEMES = ("http", "https")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_PLAIN_HOST = re.compile(r"^[a-z0-9.-]+$")
_PLAIN_PATH = re.compile(r"^(/[A-Za-z0-9.-]+)+$")
_MAX_STEM = 180


def check_url(url: str, *, field: str = "url") -> str:
    """The normalized ``url``; raises ``InvalidInput`` saying what is accepted."""
    if len(url) > MAX_URL_LENGTH:
        raise InvalidInput(f"{field} is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError as exc:
        raise InvalidInput(f"{field} {url!r} is not a valid URL: {exc}") from exc
    if parts.scheme.lower() not in _SCHEMES:
        raise InvalidInput(f"{field} {url!r} is not accepted: only absolute http:// and https:// URLs are")
    if not parts.hostname:
        raise InvalidInput(f"{field} {url!r} has no host; send an absolute URL such as https://example.com/docs/")
    if parts.username is not None or parts.password is not None:
        raise InvalidInput(f"{field} must not carry credentials (user:password@); the crawler fetches public pages")
    return normalize_url(url)


def normalize_url(url: str) -> str:
    """One spelling of an absolute http(s) URL; the input must have passed ``check_url``."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    netloc = host if parts.port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{parts.port}"
    path = urljoin("/", parts.path) if parts.path else "/"  # removes dot segments
    return urlunsplit((scheme, netloc, path, parts.query, ""))


def resolve_link(base_url: str, href: str) -> str | None:
    """The normalized absolute URL ``href`` points to from ``base_url``, or None if not a fetchable page."""
    href = href.strip()
    if not href or href.startswith("#"):
        return None
    try:
        absolute = urljoin(base_url, href)
        return check_url(absolute)
    except (InvalidInput, ValueError):
        return None


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of a normalized URL (robots.txt applies per origin)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def host_of(url: str) -> str:
    """``host[:port]`` of a normalized URL: what ``same_host`` compares."""
    return urlsplit(url).netloc


@dataclass(frozen=True)
class Scope:
    """Which discovered pages a crawl takes in.

    ``host`` (when set) is the only ``host[:port]`` allowed; a page's path must start with one
    of ``include_prefixes`` (when any) and with none of ``exclude_prefixes``.
    """

    host: str | None
    include_prefixes: Sequence[str] = ()
    exclude_prefixes: Sequence[str] = ()

    def admits(self, url: str) -> bool:
        parts = urlsplit(url)
        if self.host is not None and parts.netloc != self.host:
            return False
        path = parts.path or "/"
        if self.include_prefixes and not any(path.startswith(p) for p in self.include_prefixes):
            return False
        return not any(path.startswith(p) for p in self.exclude_prefixes)


_EXTENSION_OF_TYPE: dict[str, str] = {}
for _extension, _media_type in ACCEPTED.items():
    _EXTENSION_OF_TYPE.setdefault(_media_type, _extension)


def page_file_name(url: str, media_type: str) -> str:
    """The document name of the page at ``url`` whose content is of ``media_type``.

    ``host[+port]_path_segments.ext`` when the URL can be read back from it (a plain host and
    path, the extension already naming ``media_type``, no query); otherwise the same stem with
    an 8-hex digest of the URL, so that two URLs never share a name. The site root is
    ``host[+port].ext``. The scheme is left out: the http and https copies of a page are one
    document.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    origin = host if parts.port is None else f"{host}+{parts.port}"
    extension = _EXTENSION_OF_TYPE.get(media_type, ".txt")
    path = parts.path or "/"
    suffix = PurePosixPath(path).suffix
    if ACCEPTED.get(suffix.lower()) == media_type:
        extension = suffix.lower()
    if path == "/":
        stem, plain = origin, True
    else:
        stem = origin + "_" + path.strip("/").replace("/", "_")
        plain = bool(_PLAIN_PATH.match(path)) and suffix == extension
        if suffix.lower() == extension:
            stem = stem[: -len(extension)]
    plain = plain and not parts.query and bool(_PLAIN_HOST.match(host)) and len(stem) <= _MAX_STEM
    stem = re.sub(r"[^A-Za-z0-9._+-]+", "-", stem).strip(".-")[:_MAX_STEM]
    if not plain:
        without_scheme = url.partition("://")[2]
        stem += "-" + hashlib.sha256(without_scheme.encode()).hexdigest()[:8]
    return clean_file_name(stem + extension)


def extension_for(media_type: str) -> str:
    """The file extension the gateway gives content of ``media_type``."""
    return _EXTENSION_OF_TYPE[media_type]
