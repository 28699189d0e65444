"""The fault suite's table: one row per scenario, printed at the end of the pytest session.

A ``FaultReport`` is a pytest plugin registered on first use (``FaultReport.of(config)``), so
any test module can add rows without a conftest of its own; it prints in the terminal summary
and writes the rows as JSON beside the end-to-end logs.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pytest


@dataclass(frozen=True)
class FaultRow:
    """One scenario's outcome; the counts are documents (``unacked`` and ``dlq`` are messages,
    ``upload_retries`` failed upload requests)."""

    scenario: str
    documents: int
    lost: int
    duplicated: int
    stuck: int
    inconsistent: int
    unacked: int
    dlq: int
    #: uploads the gateway refused or failed (connection refused, 5xx) before accepting them
    upload_retries: int
    #: fault to the first progress seen once the fault was over (None: the batch never finished)
    recovery_s: float | None
    #: fault to every job finished
    all_done_s: float | None
    #: the whole scenario: uploads, fault, drain and audit
    wall_s: float


_COLUMNS = (
    ("scenario", "scenario"),
    ("docs", "documents"),
    ("lost", "lost"),
    ("dup", "duplicated"),
    ("stuck", "stuck"),
    ("incons", "inconsistent"),
    ("unacked", "unacked"),
    ("dlq", "dlq"),
    ("retries", "upload_retries"),
    ("recovery s", "recovery_s"),
    ("all done s", "all_done_s"),
    ("wall s", "wall_s"),
)


def format_table(rows: list[FaultRow]) -> list[str]:
    """The rows as aligned text lines, a header first."""

    def cell(value: object) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:.1f}"
        return str(value)

    cells = [[title for title, _ in _COLUMNS]] + [[cell(getattr(r, attr)) for _, attr in _COLUMNS] for r in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(_COLUMNS))]
    lines = [
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths, strict=True)))
        for line in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


@dataclass
class FaultReport:
    """Rows of this session; ``path`` receives them as JSON when the session ends."""

    path: Path | None = None
    rows: list[FaultRow] = field(default_factory=list)

    NAME = "ragstream-fault-report"

    @classmethod
    def of(cls, config: pytest.Config, *, path: Path | None = None) -> FaultReport:
        """The session's report, registered as a plugin the first time it is asked for."""
        report = config.pluginmanager.get_plugin(cls.NAME)
        if report is None:
            report = cls(path=path)
            config.pluginmanager.register(report, cls.NAME)
        assert isinstance(report, FaultReport)
        return report

    def add(self, row: FaultRow) -> None:
        self.rows.append(row)

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.rows:
            return
        terminalreporter.write_sep("=", "fault suite")
        for line in format_table(self.rows):
            terminalreporter.write_line(line)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps([asdict(r) for r in self.rows], indent=2) + "\n")
            terminalreporter.write_line(f"(also in {self.path})")
