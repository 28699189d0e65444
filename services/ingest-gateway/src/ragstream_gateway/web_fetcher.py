"""Fetching web pages politely and safely: robots.txt, byte limits, timeouts, public addresses only.

Guarantees of ``WebFetcher``:

- every request says ``User-Agent: ragstream-crawler/0.1`` and carries no cookies or
  credentials (``trust_env=False``: no ``.netrc``, no proxy variables);
- a body larger than ``max_bytes`` is not read past the limit; a page gets at most
  ``timeout_s`` for its whole answer, redirects included;
- unless ``allow_private_addresses``, a host that resolves to a loopback, private, link-local
  or otherwise non-public address is refused (so that a crawl cannot read internal services;
  the check happens before each request, a host that changes its DNS answer in between is not
  caught);
- redirects are followed by hand, at most ``MAX_REDIRECTS``, and each target is checked
  against the crawl's scope and robots.txt like a link.

``FetchFailed`` carries the reason a URL could not be taken in; ``FetchSkipped`` (a subclass)
marks URLs the crawl chose not to fetch (robots.txt, scope).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import tempfile
import time
import urllib.robotparser
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO, cast
from urllib.parse import urlsplit

import httpx

from ragstream_gateway.web_markup import robots_directives
from ragstream_gateway.web_urls import origin_of, resolve_link

USER_AGENT = "ragstream-crawler/0.1"
MAX_REDIRECTS = 5
MAX_ROBOTS_BYTES = 512 * 1024
#: a robots.txt ``Crawl-delay`` is honoured up to this many seconds
MAX_CRAWL_DELAY_S = 60.0
_SPOOL_BYTES = 1024 * 1024


class FetchFailed(Exception):
    """A URL could not be taken in; ``str()`` is the reason shown to the client."""

    def __init__(self, reason: str, *, http_status: int | None = None) -> None:
        super().__init__(reason)
        self.http_status = http_status


class FetchSkipped(FetchFailed):
    """The crawl chose not to fetch a URL (robots.txt forbids it, or it leads out of scope)."""


@dataclass
class FetchedPage:
    """A page's answer: the URL it finally came from, its type and its body (a file, rewound)."""

    url: str
    http_status: int
    media_type: str
    charset: str | None
    body: BinaryIO
    size: int
    robots_directives: set[str] = field(default_factory=set)

    def close(self) -> None:
        self.body.close()


@dataclass
class _Answer:
    url: str
    status: int
    headers: httpx.Headers
    body: BinaryIO
    size: int


class WebFetcher:
    """HTTP for crawls, shared by every crawl of one gateway; ``aclose`` when done."""

    def __init__(
        self,
        *,
        max_bytes: int,
        timeout_s: float,
        max_connections: int,
        allow_private_addresses: bool = False,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s
        self.allow_private_addresses = allow_private_addresses
        self._client = httpx.AsyncClient(
            headers={"User-Agent": USER_AGENT},
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)),
            follow_redirects=False,
            trust_env=False,
            limits=httpx.Limits(max_connections=max_connections),
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def fetch_page(
        self,
        url: str,
        *,
        robots: RobotsRules,
        admits: Callable[[str], bool] = lambda _: True,
        accepts_type: Callable[[str], str | None] = lambda _: None,
    ) -> FetchedPage:
        """The body of ``url`` after redirects that stay in scope and are allowed by robots.txt.

        ``accepts_type(media_type)`` returns a reason to refuse the content type before its body
        is read, or None. Raises ``FetchSkipped`` or ``FetchFailed`` with the reason.
        """
        try:
            async with asyncio.timeout(self.timeout_s):
                current = url
                for _ in range(MAX_REDIRECTS + 1):
                    await self._check_address(current)  # before robots.txt, whose fetch would fail alike
                    if (refusal := await robots.refusal(current)) is not None:
                        raise FetchSkipped(refusal)
                    await robots.wait_turn(current)
                    answer = await self._get(current, self.max_bytes, accepts_type=accepts_type)
                    if answer.status not in (301, 302, 303, 307, 308):
                        break
                    answer.body.close()
                    target = resolve_link(current, answer.headers.get("location", ""))
                    if target is None:
                        raise FetchFailed(
                            f"HTTP {answer.status} redirect without a usable http(s) Location",
                            http_status=answer.status,
                        )
                    if not admits(target):
                        raise FetchSkipped(f"redirected to {target}, outside the crawl's scope")
                    current = target
                else:
                    raise FetchFailed(f"more than {MAX_REDIRECTS} redirects", http_status=answer.status)
        except TimeoutError as exc:
            raise FetchFailed(f"no complete answer within {self.timeout_s:g} s") from exc
        media_type, charset = _content_type(answer.headers)
        page = FetchedPage(
            url=answer.url,
            http_status=answer.status,
            media_type=media_type,
            charset=charset,
            body=answer.body,
            size=answer.size,
            robots_directives=robots_directives(",".join(answer.headers.get_list("x-robots-tag"))),
        )
        if not 200 <= answer.status < 300:
            page.close()
            raise FetchFailed(f"HTTP {answer.status} {_phrase(answer.status)}", http_status=answer.status)
        return page

    async def fetch_text(self, url: str, *, max_bytes: int) -> tuple[int, bytes]:
        """Status and body of a small resource (robots.txt), following redirects; raises ``FetchFailed``."""
        try:
            async with asyncio.timeout(self.timeout_s):
                current = url
                for _ in range(MAX_REDIRECTS + 1):
                    answer = await self._get(current, max_bytes)
                    with answer.body:
                        data = answer.body.read()
                    target = resolve_link(current, answer.headers.get("location", ""))
                    if answer.status not in (301, 302, 303, 307, 308) or target is None:
                        return answer.status, data
                    current = target
                raise FetchFailed(f"more than {MAX_REDIRECTS} redirects")
        except TimeoutError as exc:
            raise FetchFailed(f"no complete answer within {self.timeout_s:g} s") from exc

    async def _get(
        self, url: str, max_bytes: int, *, accepts_type: Callable[[str], str | None] = lambda _: None
    ) -> _Answer:
        await self._check_address(url)
        body = cast(BinaryIO, tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES))  # noqa: SIM115 - handed on
        try:
            async with self._client.stream("GET", url) as response:
                status = response.status_code
                if 200 <= status < 300:
                    refusal = accepts_type(_content_type(response.headers)[0])
                    if refusal is not None:
                        raise FetchFailed(refusal, http_status=status)
                    length = response.headers.get("content-length", "")
                    if length.isdigit() and int(length) > max_bytes:
                        raise FetchFailed(_too_large(max_bytes), http_status=status)
                    size = 0
                    async for chunk in response.aiter_bytes():
                        size += len(chunk)
                        if size > max_bytes:
                            raise FetchFailed(_too_large(max_bytes), http_status=status)
                        body.write(chunk)
                else:
                    size = 0
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            body.close()
            raise FetchFailed(f"cannot fetch {url}: {_describe(exc)}") from exc
        except BaseException:
            body.close()
            raise
        body.seek(0)
        return _Answer(url=url, status=status, headers=response.headers, body=body, size=size)

    async def _check_address(self, url: str) -> None:
        if self.allow_private_addresses:
            return
        parts = urlsplit(url)
        host = parts.hostname or ""
        try:
            addresses = [ipaddress.ip_address(host)]
        except ValueError:
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(host, parts.port or 443, type=socket.SOCK_STREAM)
            except (socket.gaierror, UnicodeError, ValueError) as exc:  # UnicodeError: a host IDNA cannot encode
                raise FetchFailed(f"cannot resolve host {host!r}: {getattr(exc, 'strerror', None) or exc}") from exc
            addresses = [ipaddress.ip_address(str(info[4][0]).partition("%")[0]) for info in infos]  # no zone id
        for address in addresses:
            if not address.is_global:
                raise FetchFailed(
                    f"host {host!r} has the non-public address {address}; the crawler fetches public"
                    " addresses only (RAGSTREAM_GATEWAY_WEB_ALLOW_PRIVATE_ADDRESSES=true allows others)"
                )


class RobotsRules:
    """The robots.txt rules of each origin one crawl visits, read once per crawl.

    A missing robots.txt (4xx other than 401/403) allows everything; 401/403, a server error
    or an unreachable robots.txt forbids the whole origin, as the robots exclusion standard
    (RFC 9309) asks. ``Crawl-delay`` spaces the requests to an origin (up to ``MAX_CRAWL_DELAY_S``).
    """

    def __init__(self, fetcher: WebFetcher) -> None:
        self.fetcher = fetcher
        self._parsers: dict[str, urllib.robotparser.RobotFileParser] = {}
        #: why an origin is forbidden as a whole (its robots.txt could not be read)
        self._closed: dict[str, str] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._next_turn: dict[str, float] = {}

    async def allows(self, url: str) -> bool:
        return await self.refusal(url) is None

    async def refusal(self, url: str) -> str | None:
        """Why robots.txt forbids ``url``, or None when it may be fetched."""
        origin = origin_of(url)
        parser = await self._parser(origin)
        if origin in self._closed:
            return f"{url} is not fetched: {self._closed[origin]}"
        if not parser.can_fetch(USER_AGENT, url):
            return f"{url} is disallowed by robots.txt for {USER_AGENT}"
        return None

    async def wait_turn(self, url: str) -> None:
        """Wait until the origin's ``Crawl-delay`` since the previous request has passed."""
        origin = origin_of(url)
        delay = (await self._parser(origin)).crawl_delay(USER_AGENT)
        if not delay:
            return
        async with self._lock(origin):
            now = time.monotonic()
            turn = self._next_turn.get(origin, now)
            self._next_turn[origin] = max(turn, now) + min(float(delay), MAX_CRAWL_DELAY_S)
            if turn > now:
                await asyncio.sleep(turn - now)

    def _lock(self, origin: str) -> asyncio.Lock:
        return self._locks.setdefault(origin, asyncio.Lock())

    async def _parser(self, origin: str) -> urllib.robotparser.RobotFileParser:
        if origin in self._parsers:
            return self._parsers[origin]
        async with self._lock(origin):
            if origin not in self._parsers:
                self._parsers[origin] = await self._read(origin)
        return self._parsers[origin]

    async def _read(self, origin: str) -> urllib.robotparser.RobotFileParser:
        parser = urllib.robotparser.RobotFileParser(f"{origin}/robots.txt")
        try:
            status, data = await self.fetcher.fetch_text(f"{origin}/robots.txt", max_bytes=MAX_ROBOTS_BYTES)
        except FetchFailed as exc:
            status, data = 0, b""
            self._closed[origin] = f"robots.txt of {origin} could not be read ({exc}), so the site is left alone"
        if status in (401, 403) or status >= 500:
            self._closed[origin] = f"robots.txt of {origin} answered HTTP {status}, which forbids the whole site"
        if origin in self._closed:
            parser.parse(["User-agent: *", "Disallow: /"])
        elif status < 400:
            parser.parse(data.decode("utf-8", errors="replace").splitlines())
        parser.modified()  # can_fetch answers False until the rules are marked as read
        return parser


def _content_type(headers: httpx.Headers) -> tuple[str, str | None]:
    value = headers.get("content-type", "")
    media_type, _, parameters = value.partition(";")
    charset = None
    for parameter in parameters.split(";"):
        name, _, raw = parameter.partition("=")
        if name.strip().lower() == "charset" and raw.strip():
            charset = raw.strip().strip('"')
    return media_type.strip().lower(), charset


def _too_large(max_bytes: int) -> str:
    return f"the page is larger than the limit of {max_bytes} bytes"


def _phrase(status: int) -> str:
    try:
        return httpx.codes(status).name.replace("_", " ").title()
    except ValueError:
        return ""


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
