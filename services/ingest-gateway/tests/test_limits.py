"""Size limits per format: tabular files have a stricter limit than other documents."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import pytest

from ragstream_core.errors import EmptyUpload, UnsupportedMediaType, UploadTooLarge
from ragstream_devstack.testing import new_id
from ragstream_gateway.limits import TABULAR_TYPES, checked_media_type, receiving_limit, upload_limit
from ragstream_gateway.media import CSV, MARKDOWN, PDF, XLSM, XLSX
from ragstream_gateway.settings import GatewaySettings

if TYPE_CHECKING:
    from conftest import GatewayFactory

SETTINGS = GatewaySettings(max_upload_bytes=2000, max_tabular_bytes=1000)
CSV_ROWS = b"name,quantity\n" + b"apple,1\n" * 200  # 1614 bytes: over the tabular limit, under the other


@pytest.mark.parametrize("media_type", [CSV, XLSX, XLSM, "application/vnd.oasis.opendocument.spreadsheet"])
def test_tabular_types_get_the_tabular_limit(media_type: str) -> None:
    assert upload_limit(media_type, SETTINGS) == 1000


@pytest.mark.parametrize("media_type", [PDF, MARKDOWN, None])
def test_other_types_and_unknown_types_get_the_general_limit(media_type: str | None) -> None:
    assert upload_limit(media_type, SETTINGS) == 2000


def test_tabular_limit_never_exceeds_the_general_limit() -> None:
    settings = GatewaySettings(max_upload_bytes=500, max_tabular_bytes=1000)

    assert upload_limit(CSV, settings) == 500


def test_defaults_are_100_mib_and_50_mib_for_tables() -> None:
    settings = GatewaySettings()

    assert (upload_limit(PDF, settings), upload_limit(CSV, settings)) == (100 * 1024 * 1024, 50 * 1024 * 1024)


def test_parquet_is_tabular() -> None:
    assert "application/vnd.apache.parquet" in TABULAR_TYPES


def test_limit_while_receiving_follows_the_extension() -> None:
    assert (receiving_limit("table.CSV", SETTINGS), receiving_limit("notes.md", SETTINGS)) == (1000, 2000)
    assert receiving_limit("no-extension", SETTINGS) == 2000


def test_csv_over_the_tabular_limit_is_refused_naming_that_limit() -> None:
    with pytest.raises(UploadTooLarge, match=r"limit of 1000 bytes for tabular files .* its type is text/csv"):
        checked_media_type("rows.csv", io.BytesIO(CSV_ROWS), SETTINGS)


def test_text_of_the_same_size_is_accepted() -> None:
    assert checked_media_type("rows.md", io.BytesIO(CSV_ROWS), SETTINGS) == MARKDOWN


def test_csv_over_every_limit_still_names_the_tabular_limit() -> None:
    with pytest.raises(UploadTooLarge, match="limit of 1000 bytes for tabular files"):
        checked_media_type("rows.csv", io.BytesIO(CSV_ROWS * 2), SETTINGS)


def test_oversized_file_of_a_wrong_type_is_413_not_415() -> None:
    with pytest.raises(UploadTooLarge, match="limit of 2000 bytes"):
        checked_media_type("rows.pdf", io.BytesIO(CSV_ROWS * 2), SETTINGS)


def test_wrong_type_within_the_limit_is_415() -> None:
    with pytest.raises(UnsupportedMediaType):
        checked_media_type("rows.pdf", io.BytesIO(CSV_ROWS), SETTINGS)


def test_empty_file_is_400_whatever_its_name_says() -> None:
    with pytest.raises(EmptyUpload):
        checked_media_type("empty.pdf", io.BytesIO(b""), SETTINGS)


async def test_rest_upload_of_a_csv_over_the_tabular_limit_is_413_with_that_limit(
    gateway_factory: GatewayFactory,
) -> None:
    gateway = await gateway_factory(SETTINGS)

    response = await gateway.upload(new_id("col"), "rows.csv", CSV_ROWS)

    assert response.status_code == 413
    body = response.json()
    assert body["error"] == "UploadTooLarge"
    assert "limit of 1000 bytes for tabular files (CSV, XLSX/XLSM, ODS, Parquet)" in body["detail"]
    assert (body["limit_bytes"], body["media_type"]) == (1000, CSV)
    assert await gateway.uploaded_events() == []


async def test_rest_upload_of_markdown_of_the_same_size_is_accepted(gateway_factory: GatewayFactory) -> None:
    gateway = await gateway_factory(SETTINGS)

    response = await gateway.upload(new_id("col"), "rows.md", CSV_ROWS)

    assert response.status_code == 202
