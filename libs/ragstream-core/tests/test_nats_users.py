"""The NATS users' table: a configuration nats-server accepts, and URLs logged without passwords."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ragstream_core.nats_users import OPERATOR, SERVICE_USERS, nats_config, redacted


def test_the_rendered_users_are_accepted_by_nats_server(tmp_path: Path) -> None:
    config = tmp_path / "users.conf"
    config.write_text(nats_config({user: f"pw of {user}" for user in (OPERATOR, *SERVICE_USERS)}))

    result = subprocess.run(
        [str(Path(sys.executable).parent / "nats-server"), "-t", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert config.read_text().count("allow_responses: true") == 1  # the embedder alone answers requests


def test_a_url_is_logged_without_its_password() -> None:
    assert redacted("nats://parser:s3cret@nats:4222") == "nats://parser:***@nats:4222"
    assert redacted("nats://127.0.0.1:4222") == "nats://127.0.0.1:4222"
