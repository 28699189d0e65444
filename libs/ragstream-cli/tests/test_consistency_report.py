"""How the consistency report reads."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from ragstream_cli.consistency import print_report

PROBLEM = {
    "kind": "missing_points",
    "collection_id": "sales",
    "document_id": "d-1",
    "version": 2,
    "key": None,
    "detail": "indexed with 12 chunks but 9 points",
    "repairable": True,
}


def render(report: dict[str, Any], *, repaired: bool) -> str:
    console = Console(width=160, record=True, color_system=None)
    print_report(console, report, repaired=repaired)
    return console.export_text()


def test_problems_are_listed_and_repair_is_suggested() -> None:
    report = {
        "consistent": False,
        "checked": {"documents": 3, "versions": 4, "objects": 8, "points": 40},
        "problems": [PROBLEM],
        "repaired": [],
    }

    text = render(report, repaired=False)

    assert "checked 3 documents, 4 versions, 8 objects, 40 points" in text
    assert "1 problems" in text
    assert "missing_points" in text
    assert "indexed with 12 chunks but 9 points" in text
    assert "not consistent; `ragstream verify --repair` repairs those marked repairable" in text


def test_after_a_repair_what_was_repaired_is_listed_and_the_result_is_consistent() -> None:
    report = {"consistent": True, "checked": {"documents": 3}, "problems": [], "repaired": [PROBLEM]}

    text = render(report, repaired=True)

    assert "repaired 1" in text
    assert "missing_points" in text
    assert text.rstrip().endswith("consistent")
    assert "not consistent" not in text
