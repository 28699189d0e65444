"""Every format of the shared corpus, read by the real Docling and the real LibreOffice."""

from __future__ import annotations

import datetime
import io
import subprocess
import threading
from email.message import EmailMessage
from pathlib import Path

import pytest

from ragstream_core.errors import UnreadableDocument
from ragstream_parser import legacy
from ragstream_parser.docling_parser import DoclingParser, ParsedDocument, ParseOptions
from ragstream_parser.formats import (
    CSV,
    DOC,
    EML,
    ODP,
    ODS,
    ODT,
    PARQUET,
    PPT,
    PPTX,
    VTT,
    XLS,
    XLSM,
    XLSX,
)

MAX_TOKENS = 254

#: a phrase read in each corpus file (opened by hand), which its chunks must hold
PHRASES = {
    "doc/legacy_sample.doc": (DOC, "Here are some interesting things a respectful duck could eat"),
    "xls/legacy_sample.xls": (XLS, "Year: 2021; Freshwater Ducks: 150"),
    "odf/text_document_01.odt": (ODT, "Richard McClintock, a Latin professor at Hampden-Sydney College"),
    "odf/odf_table_with_title_01.ods": (ODS, "Year: 2024; Freshwater Ducks: 180"),
    "email/eml_simple.eml": (EML, "This is a simple email body."),
    "webvtt/webvtt_example_01.vtt": (
        VTT,
        "Neil deGrasse Tyson: Didn\u2019t we talk about enough in that conversation?",
    ),
    "csv/csv-comma.csv": (CSV, "First Name: Preston; Last Name: Lozano, Dr"),
    "csv/csv-semicolon.csv": (CSV, "Company: Dominguez;Mcmillan and Donovan"),
    "csv/csv-inconsistent-header.csv": (CSV, "1: a; 2: b; 3: c; column_4: d"),
    "csv/csv-too-many-columns.csv": (CSV, "1: a; 2: b; 3: c; 4: d; column_5: e"),
    "xlsx/xlsx_01.xlsx": (XLSX, "first: 8; header / second: 9; header / third: 9"),
    "xlsx/xlsx_02_sample_sales_data.xlsm": (XLSM, "Product: Widget C; Date: 2024-01-15 00:00:00; Quantity: 10"),
    "xlsx/xlsx_05_table_with_title.xlsx": (XLSX, "Year: 2019; Freshwater Ducks: 120"),
}


@pytest.fixture(scope="module")
def parser() -> DoclingParser:
    return DoclingParser(max_tokens=MAX_TOKENS)


@pytest.fixture(scope="module")
def presentations(tmp_path_factory: pytest.TempPathFactory, corpus: Path) -> dict[str, bytes]:
    """A .ppt and an .odp made by LibreOffice from a corpus presentation (the corpus has neither)."""
    work = tmp_path_factory.mktemp("slides")
    source = work / "slides.pptx"
    source.write_bytes((corpus / "pptx" / "powerpoint_sample.pptx").read_bytes())
    made = {}
    for target in ("ppt", "odp"):
        profile = f"-env:UserInstallation={(work / 'profile').as_uri()}"
        command = ["soffice", profile, "--headless", "--convert-to", target, "--outdir", str(work), str(source)]
        subprocess.run(command, check=True, capture_output=True, timeout=120)
        made[target] = (work / f"slides.{target}").read_bytes()
    return made


def parse(parser: DoclingParser, data: bytes, name: str, media_type: str, **options: tuple[str, ...]) -> ParsedDocument:
    return parser.parse(data, file_name=name, media_type=media_type, options=ParseOptions(**options))


def assert_well_formed(parsed: ParsedDocument, parser: DoclingParser) -> None:
    assert parsed.chunks
    assert [chunk.index for chunk in parsed.chunks] == list(range(len(parsed.chunks)))
    assert all(chunk.text.strip() and chunk.embed_text.strip() for chunk in parsed.chunks)
    assert all(chunk.tokens == parser.tokenizer.count_tokens(chunk.embed_text) for chunk in parsed.chunks)
    assert max(chunk.tokens for chunk in parsed.chunks) <= MAX_TOKENS


@pytest.mark.parametrize("relative", sorted(PHRASES))
def test_every_corpus_file_yields_chunks_holding_its_text(parser: DoclingParser, corpus: Path, relative: str) -> None:
    media_type, phrase = PHRASES[relative]

    parsed = parse(parser, (corpus / relative).read_bytes(), Path(relative).name, media_type)

    assert_well_formed(parsed, parser)
    assert any(phrase in chunk.text for chunk in parsed.chunks), [c.text for c in parsed.chunks]


def test_every_corpus_format_has_a_phrase_test(corpus: Path) -> None:
    formats = {p.parent.name for p in corpus.glob("*/*") if p.is_file()}
    converted_here = {"pdf", "docx", "pptx", "html", "md"}  # read by Docling as before: test_docling_parser

    assert formats - converted_here == {Path(relative).parent.name for relative in PHRASES}


@pytest.mark.parametrize(("kind", "media_type"), [("ppt", PPT), ("odp", ODP)])
def test_presentations_converted_by_libreoffice_read_like_pptx(
    parser: DoclingParser, presentations: dict[str, bytes], kind: str, media_type: str
) -> None:
    parsed = parse(parser, presentations[kind], f"slides.{kind}", media_type)

    assert_well_formed(parsed, parser)
    assert any("A rectangle shape with this text inside." in chunk.text for chunk in parsed.chunks)
    assert ["Second slide title"] in [chunk.heading_path for chunk in parsed.chunks]


def test_legacy_word_keeps_its_headings(parser: DoclingParser, corpus: Path) -> None:
    parsed = parse(parser, (corpus / "doc" / "legacy_sample.doc").read_bytes(), "legacy_sample.doc", DOC)

    assert ["Let\u2019s swim!", "Let\u2019s eat"] in [chunk.heading_path for chunk in parsed.chunks]


def test_spreadsheet_rows_sit_under_their_sheet_and_title(parser: DoclingParser, corpus: Path) -> None:
    parsed = parse(parser, (corpus / "xls" / "legacy_sample.xls").read_bytes(), "legacy_sample.xls", XLS)

    (chunk,) = parsed.chunks
    assert chunk.heading_path == ["Duck Observations", "Number of freshwater ducks per year"]
    assert chunk.embed_text.startswith("Duck Observations\nNumber of freshwater ducks per year\nYear: 2019;")
    assert chunk.pages == [1]


def test_every_table_of_a_workbook_is_read_with_its_sheet_as_page(parser: DoclingParser, corpus: Path) -> None:
    parsed = parse(parser, (corpus / "xlsx" / "xlsx_01.xlsx").read_bytes(), "xlsx_01.xlsx", XLSX)

    assert [(chunk.heading_path, chunk.pages) for chunk in parsed.chunks] == [
        (["Sheet1"], [1]),
        (["Sheet2"], [2]),
        (["Sheet2"], [2]),
        (["Sheet2"], [2]),
        (["Sheet3"], [3]),
        (["Sheet3"], [3]),
    ]


def test_email_subject_heads_the_chunks_and_senders_are_kept(parser: DoclingParser, corpus: Path) -> None:
    parsed = parse(parser, (corpus / "email" / "eml_simple.eml").read_bytes(), "eml_simple.eml", EML)

    (chunk,) = parsed.chunks
    assert chunk.heading_path == ["Simple Email"]
    assert chunk.embed_text.startswith("Simple Email\n")
    assert "From: Alice Example <alice@example.com>" in chunk.text
    assert "To: Bob Example <bob@example.com>" in chunk.text


def test_html_only_email_is_read_as_text_and_lists_its_attachments(parser: DoclingParser) -> None:
    message = EmailMessage()
    message["From"] = "Ann <ann@example.com>"
    message["To"] = "Ben <ben@example.com>"
    message["Date"] = "Tue, 03 Jun 2025 10:00:00 +0000"
    message["Subject"] = "Pond survey results"
    message.set_content(
        "<html><head><style>p {color: red}</style><script>alert('x')</script></head>"
        "<body><p>We counted <b>forty-two</b> mallards at the north pond.</p></body></html>",
        subtype="html",
    )
    message.add_attachment(b"%PDF-1.4 ...", maintype="application", subtype="pdf", filename="survey.pdf")

    parsed = parse(parser, message.as_bytes(), "survey.eml", EML)

    text = "\n".join(chunk.text for chunk in parsed.chunks)
    assert "We counted forty-two mallards at the north pond." in text
    assert "Attachments: survey.pdf" in text
    assert "Date: Tue, 03 Jun 2025 10:00:00 +0000" in text
    assert "alert" not in text
    assert "color" not in text
    assert all(chunk.heading_path[0] == "Pond survey results" for chunk in parsed.chunks)


def test_subtitle_cues_keep_speakers_and_time_ranges(parser: DoclingParser, corpus: Path) -> None:
    data = (corpus / "webvtt" / "webvtt_example_01.vtt").read_bytes()

    (chunk,) = parse(parser, data, "webvtt_example_01.vtt", VTT).chunks

    assert chunk.heading_path == ["00:00:11 - 00:00:38"]
    assert chunk.text.startswith("Roger Bingham: We are in New York City We\u2019re actually at the Lucern Hotel")
    assert "Neil deGrasse Tyson: Laughs" in chunk.text
    assert "<" not in chunk.text
    assert "Copyright" not in chunk.text  # a NOTE block


def test_long_transcript_is_cut_into_consecutive_time_ranges(parser: DoclingParser) -> None:
    body = "\n\n".join(
        f"{m // 60:02d}:{m % 60:02d}:00.000 --> {m // 60:02d}:{m % 60:02d}:30.000\n"
        f"<v.loud Ann>Cue {m}: ducks &amp; ponds"
        for m in range(200)
    )
    data = ("WEBVTT - survey\n\nSTYLE\n::cue { color: lime }\n\n" + body + "\n").encode()

    parsed = parse(parser, data, "survey.vtt", VTT)

    assert_well_formed(parsed, parser)
    assert len(parsed.chunks) > 3
    assert parsed.chunks[0].heading_path[0].startswith("00:00:00 - ")
    assert parsed.chunks[-1].heading_path == [parsed.chunks[-1].heading_path[0]]
    assert parsed.chunks[-1].heading_path[0].endswith(" - 03:19:30")
    text = " ".join(chunk.text for chunk in parsed.chunks)
    assert all(f"Cue {m}: ducks & ponds" in text for m in range(200))
    assert "lime" not in text


# ---- CSV ------------------------------------------------------------------------------------------

ROWS = [["Region", "Product", "Sales"], ["North", "Widget", "120"], ["South", "Gadget, large", "95"]]


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"], ids=["comma", "semicolon", "tab", "pipe"])
def test_csv_delimiter_is_detected(parser: DoclingParser, delimiter: str) -> None:
    def quoted(cell: str) -> str:
        return f'"{cell}"' if "," in cell or delimiter in cell else cell

    data = "\r\n".join(delimiter.join(quoted(c) for c in row) for row in ROWS).encode()

    parsed = parse(parser, data, "sales.csv", CSV)

    assert (
        parsed.chunks[0].text
        == "Region: North; Product: Widget; Sales: 120\nRegion: South; Product: Gadget, large; Sales: 95"
    )
    assert parsed.chunks[0].heading_path == ["sales.csv"]
    assert parsed.warnings == []


def test_csv_rows_longer_than_the_header_are_kept_and_warned_about(parser: DoclingParser, corpus: Path) -> None:
    parsed = parse(parser, (corpus / "csv" / "csv-too-many-columns.csv").read_bytes(), "t.csv", CSV)

    assert parsed.warnings == ["row 3: 5 cells, header has 4; extra cells kept as column_5"]


def test_csv_header_shorter_than_every_row_warns_per_row(parser: DoclingParser, corpus: Path) -> None:
    parsed = parse(parser, (corpus / "csv" / "csv-inconsistent-header.csv").read_bytes(), "i.csv", CSV)

    assert parsed.warnings == [f"row {n}: 4 cells, header has 3; extra cells kept as column_4" for n in (2, 3, 4, 5)]


def test_csv_short_rows_are_warned_about_and_many_warnings_are_summarised(parser: DoclingParser) -> None:
    data = ("a,b,c\n" + "1,2\n" * 30).encode()

    parsed = parse(parser, data, "short.csv", CSV)

    assert parsed.warnings[0] == "row 2: 2 cells, header has 3; missing cells left empty"
    assert len(parsed.warnings) == 21
    assert parsed.warnings[-1] == "... and 10 more rows have a different number of cells than the header"


@pytest.mark.parametrize(
    "data", [b"", b"\n\n", b",,,\n,,,\n", b"\xef\xbb\xbf  \r\n"], ids=["empty", "blank", "commas", "bom"]
)
def test_csv_without_columns_is_unreadable_with_the_reason(parser: DoclingParser, data: bytes) -> None:
    with pytest.raises(UnreadableDocument, match=r"'nothing\.csv' has no columns"):
        parse(parser, data, "nothing.csv", CSV)


def test_csv_in_windows_1252_is_read_with_a_warning(parser: DoclingParser) -> None:
    parsed = parse(parser, "Name;City\nRené;Zürich\n".encode("cp1252"), "w.csv", CSV)

    assert parsed.chunks[0].text == "Name: René; City: Zürich"
    assert parsed.warnings == ["w.csv is not UTF-8; read as Windows-1252"]


def test_many_rows_share_chunks_within_the_limit_and_none_is_lost(parser: DoclingParser) -> None:
    lines = ["Index,Customer,City,Note"] + [
        f"{i},Customer {i},City {i % 17},Ordered {i * 3} ducks" for i in range(1, 501)
    ]

    parsed = parse(parser, "\n".join(lines).encode(), "customers.csv", CSV)

    assert_well_formed(parsed, parser)
    rows = [line for chunk in parsed.chunks for line in chunk.text.split("\n")]
    assert rows == [
        f"Index: {i}; Customer: Customer {i}; City: City {i % 17}; Note: Ordered {i * 3} ducks" for i in range(1, 501)
    ]
    assert 10 < len(parsed.chunks) < 100


def test_row_wider_than_a_chunk_is_split_across_chunks(parser: DoclingParser) -> None:
    story = " ".join(f"duckling{i}" for i in range(600))
    data = f"Title,Story\nLong one,{story}\nShort,tale\n".encode()

    parsed = parse(parser, data, "wide.csv", CSV)

    assert_well_formed(parsed, parser)
    assert len(parsed.chunks) >= 3
    assert "duckling599" in parsed.chunks[-2].text or "duckling599" in parsed.chunks[-1].text


# ---- column preferences ---------------------------------------------------------------------------


def test_embed_and_context_columns_choose_what_is_embedded_not_what_is_shown(
    parser: DoclingParser, corpus: Path
) -> None:
    data = (corpus / "xlsx" / "xlsx_02_sample_sales_data.xlsm").read_bytes()

    parsed = parse(parser, data, "sales.xlsm", XLSM, embed_columns=("product", "Revenue"), context_columns=("Revenue",))

    first = parsed.chunks[0]
    assert first.embed_text.startswith("SalesData\nProduct: Widget A\nProduct: Widget B\n")
    assert "Revenue" not in first.embed_text
    assert "Date" not in first.embed_text
    assert first.text.startswith("Product: Widget A; Date: 2024-01-01 00:00:00; Quantity: 5; Revenue: 5000\n")
    assert parsed.warnings == []


def test_context_columns_alone_leave_every_other_column_embedded(parser: DoclingParser, corpus: Path) -> None:
    data = (corpus / "csv" / "csv-comma.csv").read_bytes()

    parsed = parse(parser, data, "c.csv", CSV, context_columns=("Email", "Website", "Phone 1", "Phone 2"))

    embedded = "\n".join(chunk.embed_text for chunk in parsed.chunks)
    assert "First Name: Sheryl" in embedded
    assert "@" not in embedded
    assert "Email: zunigavanessa@smith.info" in parsed.chunks[0].text
    assert len(parsed.chunks) < len(parse(parser, data, "c.csv", CSV).chunks) + 1


def test_unknown_preference_columns_are_warnings_not_failures(parser: DoclingParser, corpus: Path) -> None:
    data = (corpus / "csv" / "csv-comma.csv").read_bytes()

    parsed = parse(parser, data, "c.csv", CSV, embed_columns=("Country", "Colour"), context_columns=("Mood",))

    assert parsed.chunks[0].embed_text.startswith("c.csv\nCountry: Chile\n")
    assert len(parsed.warnings) == 2
    assert parsed.warnings[0].startswith(
        "embed_columns 'Colour' is not a column of c.csv (columns: Index, Customer Id,"
    )
    assert parsed.warnings[1].startswith("context_columns 'Mood' is not a column of c.csv")


def test_embed_columns_matching_nothing_embed_every_column_with_a_warning(parser: DoclingParser, corpus: Path) -> None:
    data = (corpus / "csv" / "csv-comma.csv").read_bytes()

    parsed = parse(parser, data, "c.csv", CSV, embed_columns=("Colour",))

    assert "First Name: Sheryl" in parsed.chunks[0].embed_text
    assert any("none of the embed_columns (Colour) is a column here" in w for w in parsed.warnings)


# ---- Parquet --------------------------------------------------------------------------------------


def test_parquet_written_by_pyarrow_is_read_row_by_row(parser: DoclingParser) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "Region": ["North", "South", None],
            "Sales": [120, 95, 7],
            "Day": [datetime.date(2024, 1, 5), datetime.date(2024, 1, 6), None],
            "Tags": [["a", "b"], [], None],
        }
    )
    sink = io.BytesIO()
    pq.write_table(table, sink, row_group_size=2)

    parsed = parse(parser, sink.getvalue(), "sales.parquet", PARQUET, embed_columns=("Region", "Sales"))

    (chunk,) = parsed.chunks
    assert chunk.text.split("\n") == [
        'Region: North; Sales: 120; Day: 2024-01-05; Tags: ["a", "b"]',
        "Region: South; Sales: 95; Day: 2024-01-06; Tags: []",
        "Sales: 7",
    ]
    assert chunk.embed_text == "sales.parquet\nRegion: North; Sales: 120\nRegion: South; Sales: 95\nSales: 7"
    assert chunk.heading_path == ["sales.parquet"]


def test_corrupt_parquet_is_unreadable_with_the_reason(parser: DoclingParser) -> None:
    with pytest.raises(UnreadableDocument, match=r"'bad\.parquet' is not a readable Parquet file"):
        parse(parser, b"PAR1" + b"\x00" * 64 + b"PAR1", "bad.parquet", PARQUET)


# ---- LibreOffice ----------------------------------------------------------------------------------


def test_missing_libreoffice_fails_the_document_naming_the_packages(corpus: Path, tmp_path: Path) -> None:
    data = (corpus / "doc" / "legacy_sample.doc").read_bytes()

    with pytest.raises(UnreadableDocument) as raised:
        legacy.convert(data, file_name="a.doc", source_suffix="doc", target_suffix="docx", path=str(tmp_path))

    assert "libreoffice-writer-nogui libreoffice-calc-nogui libreoffice-impress-nogui" in str(raised.value)


def test_conversion_outliving_its_timeout_is_killed_and_fails(corpus: Path) -> None:
    data = (corpus / "doc" / "legacy_sample.doc").read_bytes()

    with pytest.raises(UnreadableDocument, match=r"did not finish converting 'a\.doc' within 0\.05 s"):
        legacy.convert(data, file_name="a.doc", source_suffix="doc", target_suffix="docx", timeout_s=0.05)


def test_legacy_file_libreoffice_cannot_load_is_unreadable(parser: DoclingParser, corpus: Path) -> None:
    broken = (corpus / "doc" / "legacy_sample.doc").read_bytes()[:512] + b"x" * 4096

    with pytest.raises(UnreadableDocument, match=r"LibreOffice could not convert 'broken\.doc'"):
        parse(parser, broken, "broken.doc", DOC)


def test_concurrent_conversions_do_not_share_a_profile(corpus: Path) -> None:
    sources = [("doc", "docx", "legacy_sample.doc"), ("xls", "xlsx", "legacy_sample.xls")] * 2
    results: list[bytes | Exception] = []

    def convert(folder: str, target: str, name: str) -> None:
        try:
            data = (corpus / folder / name).read_bytes()
            results.append(legacy.convert(data, file_name=name, source_suffix=folder, target_suffix=target))
        except UnreadableDocument as exc:
            results.append(exc)

    threads = [threading.Thread(target=convert, args=source) for source in sources]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)

    assert len(results) == 4
    assert all(isinstance(result, bytes) and result.startswith(b"PK") for result in results), results


def test_pptx_still_goes_to_docling_unchanged(parser: DoclingParser, corpus: Path) -> None:
    parsed = parse(parser, (corpus / "pptx" / "pptx_chart.pptx").read_bytes(), "c.pptx", PPTX)

    assert ["Quarterly Duck Survey"] in [chunk.heading_path for chunk in parsed.chunks]
