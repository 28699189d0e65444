"""Where the servers are and who asks: environment variables over a profile of the config file.

The file is TOML, one table per profile (``[default]``, ``[staging]``, ...), at
``$RAGSTREAM_CONFIG``, else ``$XDG_CONFIG_HOME/ragstream/config.toml``, else
``~/.config/ragstream/config.toml``::

    [default]
    url = "http://localhost:8080"           # ingest gateway
    progress_url = "http://localhost:8081"
    chat_url = "http://localhost:8082"
    api_key = "..."                         # sent as Authorization: Bearer
    tenant = "acme"                         # sent as X-Tenant-Id
    actor = "alice"                         # sent as X-Actor (the audit log's caller)

Each key has an environment variable (``ENVIRONMENT``) that wins over the file.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ragstream_cli.errors import UsageProblem

#: each setting and its environment variable
ENVIRONMENT = {
    "url": "RAGSTREAM_URL",
    "progress_url": "RAGSTREAM_PROGRESS_URL",
    "chat_url": "RAGSTREAM_CHAT_URL",
    "api_key": "RAGSTREAM_API_KEY",
    "tenant": "RAGSTREAM_TENANT",
    "actor": "RAGSTREAM_ACTOR",
}
#: the servers of ``make run``
DEFAULT_URLS = {
    "url": "http://localhost:8080",
    "progress_url": "http://localhost:8081",
    "chat_url": "http://localhost:8082",
}
DEFAULT_PROFILE = "default"


@dataclass(frozen=True)
class Config:
    """The settings of one invocation."""

    url: str
    progress_url: str
    chat_url: str
    api_key: str | None = None
    tenant: str | None = None
    actor: str | None = None
    profile: str = DEFAULT_PROFILE

    def headers(self) -> dict[str, str]:
        """The headers every request carries."""
        headers = {"User-Agent": "ragstream-cli/0.1"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        if self.tenant:
            headers["X-Tenant-Id"] = self.tenant
        if self.actor:
            headers["X-Actor"] = self.actor
        return headers


def config_path(environ: Mapping[str, str]) -> Path:
    """The config file this environment names (it need not exist)."""
    if environ.get("RAGSTREAM_CONFIG"):
        return Path(environ["RAGSTREAM_CONFIG"]).expanduser()
    base = Path(environ["XDG_CONFIG_HOME"]) if environ.get("XDG_CONFIG_HOME") else Path.home() / ".config"
    return base / "ragstream" / "config.toml"


def _read_profiles(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise UsageProblem(f"the config file {path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise UsageProblem(f"cannot read the config file {path}: {exc.strerror}") from None


def _check_url(name: str, value: str, origin: str) -> str:
    if not value.startswith(("http://", "https://")) or len(value) <= len("https://"):
        raise UsageProblem(f"{name} from {origin} must be an http:// or https:// URL, got {value!r}")
    return value.rstrip("/")


def load_config(*, profile: str | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """The settings of ``profile`` (else ``$RAGSTREAM_PROFILE``, else ``default``), each overridden
    by its environment variable. Raises ``UsageProblem`` for an unreadable file, a profile named
    but missing, an unknown key or a URL that is not http(s)."""
    env = os.environ if environ is None else environ
    path = config_path(env)
    name = profile or env.get("RAGSTREAM_PROFILE") or DEFAULT_PROFILE
    profiles = _read_profiles(path)
    if name not in profiles and name != DEFAULT_PROFILE:
        known = ", ".join(sorted(profiles)) or "none"
        raise UsageProblem(f"profile {name!r} is not in {path}; profiles there: {known}")
    table = profiles.get(name, {})
    if not isinstance(table, dict):
        raise UsageProblem(f"profile {name!r} in {path} must be a table ([{name}]), not a value")
    unknown = sorted(set(table) - set(ENVIRONMENT))
    if unknown:
        raise UsageProblem(
            f"unknown key(s) {', '.join(unknown)} in profile {name!r} of {path}; accepted: {', '.join(ENVIRONMENT)}"
        )
    values: dict[str, str | None] = {}
    for key, variable in ENVIRONMENT.items():
        if env.get(variable):
            values[key] = env[variable]
            origin = f"${variable}"
        elif key in table:
            if not isinstance(table[key], str):
                raise UsageProblem(f"{key} in profile {name!r} of {path} must be a string")
            values[key] = table[key]
            origin = f"profile {name!r} of {path}"
        else:
            values[key] = DEFAULT_URLS.get(key)
            origin = "the default"
        value = values[key]
        if key in DEFAULT_URLS and value is not None:
            values[key] = _check_url(key, value, origin)
    return Config(
        url=values["url"] or DEFAULT_URLS["url"],
        progress_url=values["progress_url"] or DEFAULT_URLS["progress_url"],
        chat_url=values["chat_url"] or DEFAULT_URLS["chat_url"],
        api_key=values["api_key"],
        tenant=values["tenant"],
        actor=values["actor"],
        profile=name,
    )
