"""The HTML nesting guard that runs before Docling."""

from __future__ import annotations

import pytest

from ragstream_core.errors import UnreadableDocument
from ragstream_parser.nesting import MAX_HTML_DEPTH, check_html_depth, html_depth


def nested(depth: int, tag: str = "div") -> bytes:
    return (f"<html><body>{f'<{tag}>' * depth}deep{f'</{tag}>' * depth}</body></html>").encode()


def test_depth_counts_open_elements_including_html_and_body() -> None:
    assert html_depth(nested(3)) == 5


def test_void_and_implied_end_elements_do_not_nest() -> None:
    page = b"<html><body>" + b"<p>para<br><img src=x><li>item" * 5_000 + b"</body></html>"

    assert html_depth(page) == 2


def test_an_end_tag_closes_what_was_left_open_inside_it() -> None:
    page = b"<div>" + b"<span><b>unclosed" * 200 + b"</div>" + b"<div>after</div>"

    assert html_depth(page) > 2
    check_html_depth(page * 2, file_name="sloppy.html")  # each </div> resets the depth


def test_a_hundred_thousand_nested_divs_are_refused_with_the_limit() -> None:
    with pytest.raises(UnreadableDocument, match=f"more than {MAX_HTML_DEPTH} levels deep; accepted: at most"):
        check_html_depth(nested(100_000), file_name="deep.html")


def test_a_page_at_the_limit_is_accepted() -> None:
    check_html_depth(nested(MAX_HTML_DEPTH - 2), file_name="ok.html")

    with pytest.raises(UnreadableDocument, match=r"'deep\.html'"):
        check_html_depth(nested(MAX_HTML_DEPTH - 1), file_name="deep.html")
