"""The entry point's answers when it must refuse: exit code and one line saying why."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragstream_ops.cli import run


def test_refusals_name_the_problem_and_exit_with_its_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RAGSTREAM_NATS_URL", "nats://127.0.0.1:1")
    monkeypatch.setenv("RAGSTREAM_POSTGRES_URL", "postgresql://nobody@127.0.0.1:1/none")
    monkeypatch.setenv("RAGSTREAM_DATA_DIR", str(tmp_path / "data"))
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "manifest.json").write_text("{}")

    assert run(["restore", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert run(["restore", str(tmp_path / "old")]) == 2
    assert "is not a ragstream backup manifest" in capsys.readouterr().err
    assert run(["backup", str(tmp_path / "old")]) == 3
    assert "already holds a backup; name a new or empty directory" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run(["restore"])
    assert "DIR" in capsys.readouterr().err
