"""Configuration: environment over profile over defaults, and clear refusals of bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragstream_cli.config import config_path, load_config
from ragstream_cli.errors import ExitCode, UsageProblem


def write_config(tmp_path: Path, text: str) -> dict[str, str]:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return {"RAGSTREAM_CONFIG": str(path)}


def test_without_file_or_environment_the_servers_of_make_run_are_used(tmp_path: Path) -> None:
    config = load_config(environ={"XDG_CONFIG_HOME": str(tmp_path)})

    assert (config.url, config.progress_url, config.chat_url) == (
        "http://localhost:8080",
        "http://localhost:8081",
        "http://localhost:8082",
    )
    assert config.api_key is None
    assert "Authorization" not in config.headers()


def test_the_file_lives_under_xdg_config_home_else_home(tmp_path: Path) -> None:
    assert config_path({"XDG_CONFIG_HOME": str(tmp_path)}) == tmp_path / "ragstream" / "config.toml"
    assert config_path({}) == Path.home() / ".config" / "ragstream" / "config.toml"


def test_a_named_profile_is_read_and_the_environment_wins_over_it(tmp_path: Path) -> None:
    env = write_config(
        tmp_path,
        '[default]\nurl = "http://default:1"\n\n'
        '[staging]\nurl = "https://gw.staging/"\nchat_url = "https://chat.staging"\napi_key = "from-file"\n'
        'tenant = "acme"\n',
    )
    env["RAGSTREAM_API_KEY"] = "from-env"

    config = load_config(profile="staging", environ=env)

    assert config.url == "https://gw.staging"  # trailing slash dropped
    assert config.chat_url == "https://chat.staging"
    assert config.progress_url == "http://localhost:8081"
    assert config.api_key == "from-env"
    assert config.headers()["Authorization"] == "Bearer from-env"
    assert config.headers()["X-Tenant-Id"] == "acme"
    assert config.profile == "staging"


def test_the_profile_can_come_from_the_environment(tmp_path: Path) -> None:
    env = write_config(tmp_path, '[prod]\nurl = "https://gw.prod"\n')
    env["RAGSTREAM_PROFILE"] = "prod"

    assert load_config(environ=env).url == "https://gw.prod"


def test_a_missing_profile_is_a_usage_error_naming_the_profiles_there(tmp_path: Path) -> None:
    env = write_config(tmp_path, '[default]\nurl = "http://a:1"\n[staging]\nurl = "http://b:2"\n')

    with pytest.raises(UsageProblem, match=r"profile 'prod' is not in .*profiles there: default, staging") as caught:
        load_config(profile="prod", environ=env)
    assert caught.value.exit_code == ExitCode.USAGE


def test_an_unknown_key_is_refused_with_the_accepted_ones(tmp_path: Path) -> None:
    env = write_config(tmp_path, '[default]\nurll = "http://a:1"\n')

    with pytest.raises(UsageProblem, match=r"unknown key\(s\) urll .*accepted: url, progress_url, chat_url, api_key"):
        load_config(environ=env)


def test_a_url_that_is_not_http_is_refused_saying_where_it_came_from(tmp_path: Path) -> None:
    with pytest.raises(
        UsageProblem, match=r"url from \$RAGSTREAM_URL must be an http:// or https:// URL, got 'localhost:8080'"
    ):
        load_config(environ={"XDG_CONFIG_HOME": str(tmp_path), "RAGSTREAM_URL": "localhost:8080"})


def test_a_file_that_is_not_toml_is_a_usage_error(tmp_path: Path) -> None:
    env = write_config(tmp_path, "[default\nurl = ")

    with pytest.raises(UsageProblem, match="is not valid TOML"):
        load_config(environ=env)
