"""Which files ``ingest`` takes, and its exit code."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragstream_cli.errors import ExitCode, UsageProblem
from ragstream_cli.ingest import FileResult, expand_paths, ingest_exit_code


def make_tree(root: Path) -> None:
    (root / "docs" / "deep").mkdir(parents=True)
    for name in ("docs/a.md", "docs/b.pdf", "docs/deep/c.md", "top.txt"):
        (root / name).write_text(name)


def test_files_directories_and_globs_expand_to_each_file_once_in_order(tmp_path: Path) -> None:
    make_tree(tmp_path)

    found = expand_paths([str(tmp_path / "top.txt"), str(tmp_path / "docs" / "**" / "*.md"), str(tmp_path / "docs")])

    names = [p.relative_to(tmp_path.resolve()).as_posix() for p in found]
    assert names == ["top.txt", "docs/a.md", "docs/deep/c.md", "docs/b.pdf"]


def test_a_pattern_matching_nothing_is_a_usage_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(UsageProblem, match=r"no file matches '.*nothing\*\.pdf'") as caught:
        expand_paths([str(tmp_path / "nothing*.pdf")])
    assert caught.value.exit_code == ExitCode.USAGE


def result(status: str) -> FileResult:
    return FileResult(path=Path(f"{status}.md"), size=1, status=status)


@pytest.mark.parametrize(
    ("statuses", "wait", "code"),
    [
        (["indexed", "unchanged"], True, ExitCode.OK),
        (["indexed", "failed"], True, ExitCode.FAILED),
        (["uploaded", "refused"], False, ExitCode.FAILED),
        (["uploaded", "uploaded"], False, ExitCode.OK),
        (["indexed", "embedding"], True, ExitCode.FAILED),  # --wait gave up (timeout) before it was done
        (["cancelled"], True, ExitCode.FAILED),
    ],
)
def test_ingest_exits_1_when_a_file_failed_was_refused_or_is_not_done(
    statuses: list[str], wait: bool, code: ExitCode
) -> None:
    assert ingest_exit_code([result(s) for s in statuses], wait=wait) == code
