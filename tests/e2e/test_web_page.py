"""The web page and the chat widget in a real browser, against the whole system.

Debian's chromium (``/usr/bin/chromium``, or ``RAGSTREAM_CHROMIUM``) is driven by Playwright.
The stack here is this module's own, because it must allow one more browser origin: the site
that embeds the widget (served from another port, so another origin). Every step is saved as a
screenshot under the test's ``tmp_path`` and in ``test-output/e2e/web/``.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import re
import shutil
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import websockets
from playwright.async_api import Browser, Page, async_playwright, expect
from playwright.async_api import TimeoutError as PlaywrightTimeoutError

from ragstream_devstack.e2e import Client, long_markdown, operator_key
from ragstream_devstack.servers import free_port
from ragstream_devstack.stack import Stack
from ragstream_devstack.testing import eventually, new_id

CHROMIUM = os.environ.get("RAGSTREAM_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LAPTOP = {"width": 1366, "height": 768}
OUTPUT = Path(__file__).resolve().parents[2] / "test-output" / "e2e"
SHOTS = OUTPUT / "web"
WAIT_MS = 120_000  # parsing and embedding on 2 shared cores
expect.set_options(timeout=20_000)  # a step of the page on 2 cores shared with the whole stack

DUCKS = """# Ducks

## Migration

Mallards migrate south when winter comes. They return to the northern lakes in early spring.

## Breeds

The Pekin duck is raised for its meat. It was bred in China from the mallard.
"""

GEESE = """<html><head><title>Geese</title></head><body><h1>Geese</h1>
<p>Canada geese fly in a V formation to save energy on long migrations.</p></body></html>"""

REPORT = long_markdown(8, sections=40).decode()  # many chunks: embedding takes a few seconds

SWANS = "Swans\n\nMute swans pair for life and defend their nests fiercely.\n"

BROKEN_PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >>\n garbage"


@dataclass
class Site:
    """A static site on another origin (another port) that embeds the widget."""

    root: Path
    port: int

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def host_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    site = Site(tmp_path_factory.mktemp("host-site"), free_port())
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site.root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", site.port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield site
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def web_stack(
    tmp_path_factory: pytest.TempPathFactory, host_site: Site, start_stack: Callable[..., Stack]
) -> Iterator[Stack]:
    """The system with the widget's host site as an allowed browser origin; logs in test-output/e2e/logs-web/."""
    log_dir = OUTPUT / "logs-web"
    for old in log_dir.glob("*.log"):
        old.unlink()
    stack = start_stack(tmp_path_factory.mktemp("web-stack"), log_dir, browser_origins=[host_site.origin])
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's chromium; missing, the browser tests fail saying what to install."""
    if not Path(CHROMIUM).is_file():
        pytest.fail(
            f"no chromium at {CHROMIUM}: install Debian's package (`apt-get install chromium`, or `make system-deps`"
            " as root), or point RAGSTREAM_CHROMIUM at a Chromium binary"
        )
    return CHROMIUM


@pytest.fixture(scope="module")
async def browser(chromium: str) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    """A fresh browser profile at a laptop's screen size; an uncaught script error fails the test."""
    context = await browser.new_context(viewport=LAPTOP)
    opened = await context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    yield opened
    await context.close()
    assert not errors, f"the page raised: {errors}"


@pytest.fixture
async def client(web_stack: Stack) -> AsyncIterator[Client]:
    async with httpx.AsyncClient(timeout=60) as http_client:
        yield Client(web_stack, http_client)


class Shots:
    """Numbered screenshots of one test: under its tmp_path, and copied to test-output/e2e/web/."""

    def __init__(self, folder: Path, test: str) -> None:
        self.folder = folder
        self.test = test
        self.count = 0

    async def take(self, page: Page, step: str) -> Path:
        self.count += 1
        path = self.folder / f"{self.count:02d}-{step}.png"
        await page.screenshot(path=str(path), full_page=True)
        SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, SHOTS / f"{self.test}-{self.count:02d}-{step}.png")
        return path


@pytest.fixture
def shots(tmp_path: Path, request: pytest.FixtureRequest) -> Shots:
    return Shots(tmp_path, request.node.name.removeprefix("test_"))


async def open_collection(page: Page, stack: Stack, collection: str, view: str = "ingest") -> None:
    """Open the page and create ``collection`` with the New collection dialog, as a user would."""
    await page.goto(f"{stack.url('ingest-gateway')}/ui/#{view}")
    await page.get_by_role("button", name="New collection").click()
    await page.get_by_label("Name").fill(collection)
    await page.get_by_role("button", name="Create").click()
    await expect(page.locator("#collection")).to_have_value(collection)


async def drop_files(page: Page, files: dict[str, str]) -> None:
    """Drag files onto the drop zone (a real drop event carrying File objects)."""
    transfer = await page.evaluate_handle(
        """(files) => {
            const transfer = new DataTransfer();
            for (const [name, text] of Object.entries(files)) transfer.items.add(new File([text], name));
            return transfer;
        }""",
        files,
    )
    await page.dispatch_event("#dropzone", "drop", {"dataTransfer": transfer})


def upload_row(page: Page, name: str):  # type: ignore[no-untyped-def]
    return page.locator(".upload", has=page.locator(".name", has_text=name))


async def test_three_dropped_files_reach_100_percent_each_and_as_a_batch(
    page: Page, web_stack: Stack, shots: Shots
) -> None:
    collection = new_id("web-upload")
    await open_collection(page, web_stack, collection)
    await expect(page.locator("#sources-empty")).to_contain_text("No documents")
    await shots.take(page, "empty-collection")

    await drop_files(page, {"geese.html": GEESE, "report.md": REPORT, "swans.txt": SWANS})

    await expect(page.locator(".upload")).to_have_count(3)
    await expect(page.locator("#feed-state")).to_have_text("· live")
    with contextlib.suppress(PlaywrightTimeoutError):  # only a picture: the long report may be done already
        await expect(page.locator(".upload .stage").filter(has_text="embedding")).not_to_have_count(0, timeout=20_000)
    await shots.take(page, "in-progress")
    for name in ("geese.html", "report.md", "swans.txt"):
        row = upload_row(page, name)
        await expect(row.locator("progress")).to_have_attribute("value", "100", timeout=WAIT_MS)
        await expect(row.locator(".stage")).to_contain_text("indexed")
    await expect(page.locator("#batch-progress")).to_have_attribute("value", "100")
    await expect(page.locator("#batch-text")).to_contain_text("3 of 3 done")
    rows = page.locator("#sources tbody tr")
    await expect(rows).to_have_count(3)
    await expect(rows.filter(has_text="geese.html")).to_contain_text("indexed")
    await expect(rows.filter(has_text="geese.html").locator(".col-uploaded_by")).to_have_text("anonymous")
    await expect(rows.filter(has_text="report.md").locator(".col-chunk_count")).to_have_text(
        re.compile(r"^[1-9]\d+$")
    )  # many chunks
    await shots.take(page, "indexed")

    await page.get_by_label("Select all documents").check()
    await page.get_by_role("button", name="Re-embed selected").click()

    await expect(page.locator("#toast")).to_contain_text("Re-embedding 3 document(s).")
    for name in ("geese.html", "report.md", "swans.txt"):
        await expect(rows.filter(has_text=name).locator(".col-version")).to_have_text(re.compile(r"^2\b"))


async def test_a_corrupt_pdf_fails_with_its_reason_and_can_be_retried(
    page: Page, web_stack: Stack, client: Client, shots: Shots, tmp_path: Path
) -> None:
    collection = new_id("web-fail")
    await open_collection(page, web_stack, collection)
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(BROKEN_PDF)
    program = tmp_path / "tool.exe"
    program.write_bytes(b"MZ\x90\x00" + bytes(200))

    await page.locator("#file-input").set_input_files([str(broken), str(program)])

    refused = upload_row(page, "tool.exe")
    await expect(refused.locator(".stage")).to_contain_text("refused (415)")
    await expect(refused.locator(".stage")).to_contain_text("accepted types: .csv")
    failed = upload_row(page, "broken.pdf")
    await expect(failed.locator(".stage")).to_contain_text("failed in parsing", timeout=WAIT_MS)
    await expect(failed.locator(".stage")).to_contain_text("broken.pdf")
    await expect(page.locator("#batch-text")).to_contain_text("2 failed")
    await shots.take(page, "failed")

    job_id = await failed.get_attribute("data-job-id")
    assert job_id

    await failed.get_by_role("button", name="Retry broken.pdf").click()

    job = await eventually(
        lambda: client.job(job_id), until=lambda j: j["retry"] == 1 and j["status"] == "failed", within_s=WAIT_MS / 1000
    )
    assert job["error"]["stage"] == "parsing"
    await expect(failed.locator(".stage")).to_contain_text("failed in parsing")
    await expect(failed.get_by_role("button", name="Retry broken.pdf")).to_be_visible()


async def test_deleting_asks_first_and_says_why_while_a_job_runs(
    page: Page, web_stack: Stack, client: Client, shots: Shots
) -> None:
    collection = new_id("web-delete")
    done = (await client.upload(collection, "keep.md", b"# Keep\n\nKept text.\n")).json()
    gone = (await client.upload(collection, "gone.md", b"# Gone\n\nThis one goes.\n")).json()
    await client.wait_done([done["job_id"], gone["job_id"]])
    # a paused collection holds new work in the queue: its job runs until the collection resumes
    paused = await client.http.post(f"{web_stack.url('ingest-gateway')}/v1/collections/{collection}/jobs:pause")
    assert paused.status_code == 200, paused.text
    held = await client.upload(collection, "held.md", b"# Held\n\nWaiting.\n")
    assert held.status_code == 202, held.text
    await page.goto(f"{web_stack.url('ingest-gateway')}/ui/#ingest")
    await page.locator("#collection").select_option(collection)
    rows = page.locator("#sources tbody tr")
    await expect(rows).to_have_count(3)

    await rows.filter(has_text="gone.md").get_by_role("button", name="Delete gone.md").click()
    await expect(page.locator("dialog")).to_contain_text("Delete gone.md and all its versions?")
    await shots.take(page, "confirm")
    await page.get_by_role("button", name="Delete", exact=True).click()

    await expect(rows).to_have_count(2)
    await expect(rows.filter(has_text="gone.md")).to_have_count(0)

    await rows.filter(has_text="held.md").get_by_role("button", name="Delete held.md").click()
    await page.get_by_role("button", name="Delete", exact=True).click()

    dialog = page.locator("dialog")
    await expect(dialog).to_contain_text("held.md cannot be deleted yet")
    await expect(dialog).to_contain_text("has a job running")
    await shots.take(page, "blocked")
    await page.get_by_role("button", name="Cancel the job and delete").click()
    await expect(rows).to_have_count(1)
    await expect(rows).to_contain_text("keep.md")


async def test_history_compares_two_versions_and_a_document_can_be_re_embedded(
    page: Page, web_stack: Stack, client: Client, shots: Shots
) -> None:
    collection = new_id("web-versions")
    first = (await client.upload(collection, "guide.md", b"# Guide\n\n## Start\n\nPress the red button.\n")).json()
    await client.wait_done([first["job_id"]])
    second = (
        await client.upload(
            collection, "guide.md", b"# Guide\n\n## Start\n\nPress the green button.\n\n## Stop\n\nPull the lever.\n"
        )
    ).json()
    await client.wait_done([second["job_id"]])
    await page.goto(f"{web_stack.url('ingest-gateway')}/ui/#ingest")
    await page.locator("#collection").select_option(collection)
    row = page.locator("#sources tbody tr", has_text="guide.md")
    await expect(row.locator(".col-version")).to_have_text("2")

    await row.get_by_role("button", name="History of guide.md").click()
    dialog = page.locator("dialog")
    await expect(dialog.locator("tbody tr")).to_have_count(2)
    await dialog.get_by_role("button", name="Compare").click()

    await expect(dialog.locator(".compare")).to_contain_text("Pull the lever.")
    await expect(dialog.locator(".compare")).to_contain_text("Press the red button.")
    await shots.take(page, "compare")
    await dialog.get_by_role("button", name="Close").click()

    await row.get_by_role("button", name="Re-embed guide.md").click()
    await expect(row.locator(".col-version")).to_have_text("3", timeout=WAIT_MS)
    await expect(row.locator(".col-status")).to_have_text("indexed", timeout=WAIT_MS)


async def test_a_streamed_answer_cites_a_passage_that_opens_on_click(
    page: Page, web_stack: Stack, client: Client, shots: Shots
) -> None:
    collection = new_id("web-chat")
    uploaded = (await client.upload(collection, "ducks.md", DUCKS.encode())).json()
    (job,) = await client.wait_done([uploaded["job_id"]])
    assert job["status"] == "indexed", job
    await page.goto(f"{web_stack.url('ingest-gateway')}/ui/#chat")
    await page.locator("#collection").select_option(collection)
    await expect(page.locator("#conversations")).to_contain_text("No conversations yet")

    await page.get_by_label("Your question").fill("When do mallards migrate south?")
    await page.get_by_role("button", name="Ask").click()

    answer = page.locator(".turn.assistant").last
    citation = answer.locator("button.citation").first
    await expect(citation).to_be_visible(timeout=30_000)
    await expect(answer).to_contain_text("winter")
    await shots.take(page, "answer")
    await citation.click()
    passage = page.locator("dialog blockquote.passage")
    await expect(passage).to_contain_text("Mallards migrate south when winter comes")
    await expect(page.locator("dialog")).to_contain_text("ducks.md")
    await shots.take(page, "citation")
    await page.get_by_role("button", name="Close").click()
    await expect(page.locator("#conversations")).to_contain_text("When do mallards migrate south?")

    await page.get_by_role("button", name="New", exact=True).click()
    await expect(page.locator("#chat-log")).to_contain_text("Ask anything about the documents")
    await page.get_by_role("button", name="When do mallards migrate south?").click()

    await expect(page.locator(".turn.user")).to_have_text(re.compile("When do mallards migrate south"))
    await expect(page.locator(".turn.assistant button.citation")).not_to_have_count(0)


async def test_the_widget_answers_on_a_page_of_another_origin_whose_css_cannot_break_it(
    page: Page, web_stack: Stack, client: Client, host_site: Site, shots: Shots
) -> None:
    collection = new_id("web-widget")
    uploaded = (await client.upload(collection, "ducks.md", DUCKS.encode())).json()
    (job,) = await client.wait_done([uploaded["job_id"]])
    assert job["status"] == "indexed", job
    gateway = web_stack.url("ingest-gateway")
    (host_site.root / "shop.html").write_text(
        f"""<!doctype html><html><head><title>A shop</title>
<style>* {{ color: #f0f !important; font-family: serif !important; }} button {{ display: none !important; }}
div {{ border: 5px solid red !important; }}</style></head>
<body><h1>Duck supplies</h1><p>The host page's own CSS hides every button and paints everything pink.</p>
<script src="{gateway}/ui/widget.js" data-collection="{collection}" data-key="public-key-123"
        data-title="Ask about ducks"></script></body></html>"""
    )
    sent: list[dict[str, str]] = []
    page.on("request", lambda r: sent.append(r.headers) if r.url.endswith("/chat") and r.method == "POST" else None)

    await page.goto(f"{host_site.origin}/shop.html")
    launcher = page.get_by_role("button", name="Ask a question")
    await expect(launcher).to_be_visible()  # the host's `button { display: none }` does not reach it
    await launcher.click()
    await page.get_by_label("Your question").fill("Where was the Pekin duck bred?")
    await page.get_by_label("Your question").press("Enter")

    answer = page.locator("[data-ragstream-widget] .a")
    await expect(answer).to_contain_text("Pekin duck", timeout=30_000)
    source = page.get_by_role("button", name=re.compile(r"^Source \d+: ducks\.md$")).first
    await source.click()
    await expect(page.locator("[data-ragstream-widget] blockquote")).to_contain_text("bred in China")
    await shots.take(page, "widget")
    assert sent
    assert sent[0].get("authorization") == "Bearer public-key-123"
    colours = [
        await launcher.evaluate("(b) => getComputedStyle(b).color"),
        await answer.evaluate("(a) => getComputedStyle(a).color"),
    ]
    assert colours == ["rgb(255, 255, 255)", "rgb(27, 31, 36)"], "the host page's CSS reached into the widget"


async def test_admin_shows_the_queue_and_pauses_and_resumes_a_collection(
    page: Page, web_stack: Stack, client: Client, shots: Shots
) -> None:
    collection = new_id("web-admin")
    paused = await client.http.post(
        f"{web_stack.url('ingest-gateway')}/v1/collections", json={"collection_id": collection}
    )
    assert paused.status_code == 201, paused.text
    broken = (await client.upload(collection, "broken.pdf", BROKEN_PDF)).json()
    await client.wait_done([broken["job_id"]])
    await page.goto(f"{web_stack.url('ingest-gateway')}/ui/#admin")
    row = page.locator(f'#collections-control tr[data-collection="{collection}"]')
    await expect(row).to_contain_text("active")
    await expect(page.locator("#queue-depth tbody tr")).to_have_count(3)
    await expect(page.locator("#failed-jobs")).to_contain_text("broken.pdf")
    letters = page.locator("#dead-letters tr", has_text="broken.pdf")
    await expect(letters.first).to_be_visible()
    await expect(letters.first.get_by_role("button", name=re.compile("^Replay"))).to_be_visible()

    await row.get_by_role("button", name=f"Pause {collection}").click()
    await expect(row).to_contain_text("paused")
    held = await client.upload(collection, "later.md", b"# Later\n\nQueued while paused.\n", priority="bulk")
    assert held.status_code == 202
    await expect(page.locator('#queue-depth td[data-stage="queued"][data-lane="bulk"]')).to_contain_text(
        "paused", timeout=15_000
    )
    await shots.take(page, "admin")
    await row.get_by_role("button", name=f"Resume {collection}").click()

    await expect(row).to_contain_text("active")
    (job,) = await client.wait_done([held.json()["job_id"]])
    assert job["status"] == "indexed"


async def test_switching_collections_restores_each_ones_columns_and_last_view(page: Page, web_stack: Stack) -> None:
    first, second = new_id("web-a"), new_id("web-b")
    await open_collection(page, web_stack, second)
    await open_collection(page, web_stack, first)
    await page.locator(".columns-menu summary").click()
    await page.get_by_label("Uploader").uncheck()
    await page.get_by_role("link", name="Chat").click()
    await expect(page.locator("#view-chat")).to_be_visible()

    await page.locator("#collection").select_option(second)
    await expect(page.locator("#view-ingest")).to_be_visible()  # the second one was last on Ingest
    await expect(page.locator("#sources-empty")).to_contain_text(second)
    await page.locator("#collection").select_option(first)

    await expect(page.locator("#view-chat")).to_be_visible()
    await page.reload()
    await expect(page.locator("#collection")).to_have_value(first)
    await page.get_by_role("link", name="Ingest").click()
    await expect(page.locator(".columns-menu input[name=column-uploaded_by]")).not_to_be_checked()
    await expect(page.locator(".columns-menu input[name=column-size_bytes]")).to_be_checked()


UNNAMED_CONTROLS = """() => [...document.querySelectorAll("input, select, textarea, button")]
    .filter((el) => el.offsetParent !== null)
    .filter((el) => !((el.labels && el.labels.length) || el.getAttribute("aria-label") || el.textContent.trim()))
    .map((el) => el.outerHTML)"""


async def test_every_control_is_named_and_files_can_be_picked_from_the_keyboard(
    page: Page, web_stack: Stack, tmp_path: Path
) -> None:
    collection = new_id("web-keys")
    await open_collection(page, web_stack, collection)
    for view in ("Ingest", "Chat", "Admin"):
        await page.get_by_role("link", name=view).click()
        await expect(page.locator(f"#view-{view.lower()}")).to_be_visible()
        assert await page.evaluate(UNNAMED_CONTROLS) == [], f"controls without a name on the {view} view"
    await page.get_by_role("link", name="Ingest").click()
    note = tmp_path / "note.md"
    note.write_text("# Note\n\nPicked with the keyboard.\n")

    await expect(page.locator("#view-ingest")).to_be_visible()
    choose = page.get_by_role("button", name="Choose files")
    await choose.focus()
    await expect(choose).to_be_focused()  # the view rendered: Enter goes to the button, not to the page
    # Enter on the button must open the file picker, i.e. click the hidden file input (the native
    # dialog itself is the browser's; Chromium's file-chooser event proved unreliable in the full
    # suite, so the click is observed on the input and the file given to it as a picker would)
    await page.evaluate(
        """() => document.querySelector("#file-input")
            .addEventListener("click", (e) => { e.preventDefault(); window.pickerOpened = true; })"""
    )
    await page.keyboard.press("Enter")
    await page.wait_for_function("() => window.pickerOpened === true", timeout=10_000)
    await page.locator("#file-input").set_input_files(str(note))

    await expect(upload_row(page, "note.md").locator("progress")).to_have_attribute("value", "100", timeout=WAIT_MS)


# ---- keys mode: sign-in, roles, sign-out, and per-tenant browser origins ---------------------------


@pytest.fixture(scope="module")
def keyed_web_stack(tmp_path_factory: pytest.TempPathFactory, start_stack: Callable[..., Stack]) -> Iterator[Stack]:
    """The system in keys mode (a revocation reaches every service within a second); logs in
    test-output/e2e/logs-web-keys/."""
    log_dir = OUTPUT / "logs-web-keys"
    for old in log_dir.glob("*.log"):
        old.unlink()
    env = {"RAGSTREAM_AUTH_MODE": "keys", "RAGSTREAM_AUTH_CACHE_S": "1"}
    stack = start_stack(tmp_path_factory.mktemp("web-keys-stack"), log_dir, env=env)
    yield stack
    stack.stop()


@dataclass
class Member:
    """An account of a fresh tenant with an API key of its role."""

    tenant_id: str
    account_id: str
    role: str
    key: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


def new_member(stack: Stack, role: str, *, tenant: str | None = None) -> Member:
    made = operator_key(stack, tenant or new_id("tenant"), role, new_id(role))
    return Member(made["tenant_id"], made["account_id"], made["role"], made["key"])


async def sign_in(page: Page, stack: Stack, key: str) -> None:
    await page.goto(f"{stack.url('ingest-gateway')}/ui/#ingest")
    await page.get_by_label("API key").fill(key)
    await page.get_by_role("button", name="Sign in").click()


async def test_signing_in_refuses_a_wrong_key_then_shows_the_page_with_the_role_and_signs_out(
    page: Page, keyed_web_stack: Stack, shots: Shots
) -> None:
    editor = new_member(keyed_web_stack, "editor")
    forged = f"rs_live_{'0' * 12}_{'A' * 43}"
    await page.goto(f"{keyed_web_stack.url('ingest-gateway')}/ui/#ingest")
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await expect(page.get_by_label("API key")).to_be_focused()  # a keyboard user types at once
    await expect(page.get_by_role("link", name="Ingest")).to_be_hidden()

    await page.get_by_label("API key").fill(forged)
    await page.keyboard.press("Enter")

    message = page.locator("#signin-message")
    await expect(message).to_contain_text("Sign-in failed")
    await expect(message).to_contain_text("rs_live_000000000000 is not known")
    await shots.take(page, "wrong-key")

    await page.get_by_label("API key").fill(editor.key)
    await page.get_by_role("button", name="Sign in").click()

    who = page.locator("#who-text")
    await expect(who).to_contain_text(f"Signed in as {editor.account_id} (editor)")
    await expect(who).to_contain_text(editor.tenant_id)
    await expect(page.get_by_role("button", name="Choose files")).to_be_visible()
    await expect(page.locator("#feed-state")).to_have_text("· live")  # the progress feed took the session key
    await shots.take(page, "signed-in")
    stored = await page.evaluate("() => JSON.stringify({...window.sessionStorage}) + JSON.stringify({...localStorage})")
    session = await page.evaluate("() => JSON.parse(sessionStorage.getItem('ragstream.session'))")
    assert editor.key not in stored, "the API key was kept by the page"
    assert session["key"].startswith("rs_live_")
    assert session["key"] != editor.key

    note = f"{new_id('note')}.md"
    await drop_files(page, {note: "# Note\n\nUploaded with a session key.\n"})
    await expect(upload_row(page, note).locator("progress")).to_have_attribute("value", "100", timeout=WAIT_MS)

    await page.get_by_role("button", name="Sign out").click()

    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await expect(page.locator("#signin-message")).to_contain_text("You signed out.")
    assert await page.evaluate("() => sessionStorage.getItem('ragstream.session')") is None
    async with httpx.AsyncClient(timeout=30) as http:
        after = await http.get(
            f"{keyed_web_stack.url('ingest-gateway')}/v1/me", headers={"Authorization": f"Bearer {session['key']}"}
        )
    assert after.status_code == 401, "signing out did not revoke the session key"
    assert "was revoked" in after.json()["detail"]


async def test_a_viewer_sees_the_sources_but_no_upload_or_delete(
    page: Page, keyed_web_stack: Stack, shots: Shots
) -> None:
    admin = new_member(keyed_web_stack, "admin")
    viewer = new_member(keyed_web_stack, "viewer", tenant=admin.tenant_id)
    collection = new_id("web-viewer")
    async with httpx.AsyncClient(timeout=60, headers=admin.auth) as http:
        client = Client(keyed_web_stack, http)
        uploaded = await client.upload(collection, "swans.txt", SWANS.encode())
        assert uploaded.status_code == 202, uploaded.text
        await client.wait_done([uploaded.json()["job_id"]])

    await sign_in(page, keyed_web_stack, viewer.key)
    await expect(page.locator("#who-text")).to_contain_text("(viewer)")
    await page.locator("#collection").select_option(collection)

    row = page.locator("#sources tbody tr", has_text="swans.txt")
    await expect(row.locator(".col-status")).to_have_text("indexed")
    await expect(row.get_by_role("button", name="History of swans.txt")).to_be_visible()
    await expect(row.get_by_role("button", name="Delete swans.txt")).to_be_hidden()
    await expect(row.get_by_role("button", name="Re-embed swans.txt")).to_be_hidden()
    await expect(page.get_by_role("button", name="Choose files")).to_be_hidden()
    await expect(page.locator("#dropzone")).to_be_hidden()
    await expect(page.get_by_role("button", name="New collection")).to_be_hidden()
    await shots.take(page, "viewer")
    assert await page.evaluate(UNNAMED_CONTROLS) == [], "controls without a name on the signed-in page"


async def test_the_admin_view_shows_every_member_the_limits_and_lets_only_an_admin_set_the_origins(
    page: Page, keyed_web_stack: Stack, shots: Shots
) -> None:
    admin = new_member(keyed_web_stack, "admin")
    viewer = new_member(keyed_web_stack, "viewer", tenant=admin.tenant_id)
    await sign_in(page, keyed_web_stack, admin.key)
    await expect(page.locator("#who-text")).to_contain_text("(admin)")
    await page.get_by_role("link", name="Admin").click()

    limits = page.locator("#tenant-limits")
    await expect(limits.locator('td[data-limit="Uploads per key"]')).to_have_text(re.compile(r"^1\D?200 per 60 s$"))
    await expect(limits.locator('td[data-limit="Stored"]')).to_have_text("0 B of no limit")
    field = page.get_by_label("Pages whose scripts may use this tenant's keys, one origin per line")
    await field.fill("https://Intranet.example.com\nhttps://wiki.example.com:8443")
    await page.get_by_role("button", name="Save origins").click()
    await expect(page.locator("#toast")).to_contain_text("2 origins saved.")
    await expect(field).to_have_value("https://intranet.example.com\nhttps://wiki.example.com:8443")
    await field.fill("intranet.example.com")
    await page.get_by_role("button", name="Save origins").click()
    await expect(page.locator("#toast .error")).to_contain_text("origin 'intranet.example.com' is not valid")
    await shots.take(page, "tenant-admin")
    async with httpx.AsyncClient(timeout=30, headers=admin.auth) as http:
        stored = (await http.get(f"{keyed_web_stack.url('ingest-gateway')}/v1/tenant/origins")).json()
    assert stored["origins"] == ["https://intranet.example.com", "https://wiki.example.com:8443"]

    await page.get_by_role("button", name="Sign out").click()
    await expect(page.locator("#signin-message")).to_contain_text("You signed out.")  # not a race with the next sign-in
    await sign_in(page, keyed_web_stack, viewer.key)
    await expect(page.locator("#who-text")).to_contain_text("(viewer)")
    await page.get_by_role("link", name="Admin").click()

    await expect(limits.locator('td[data-limit="Documents"]')).to_have_text("0 of no limit")
    await expect(page.get_by_role("heading", name="Browser origins")).to_be_hidden()
    await expect(page.get_by_role("button", name="Save origins")).to_be_hidden()


async def test_a_revoked_session_returns_to_sign_in_saying_why(page: Page, keyed_web_stack: Stack) -> None:
    admin = new_member(keyed_web_stack, "admin")
    await sign_in(page, keyed_web_stack, admin.key)
    await expect(page.locator("#who-text")).to_contain_text("(admin)")
    session = await page.evaluate("() => JSON.parse(sessionStorage.getItem('ragstream.session'))")
    async with httpx.AsyncClient(timeout=30, headers=admin.auth) as http:
        revoked = await http.delete(f"{keyed_web_stack.url('ingest-gateway')}/v1/keys/{session['key_id']}")
    assert revoked.status_code == 200, revoked.text

    await page.get_by_role("button", name="Refresh").first.click()

    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await expect(page.locator("#signin-message")).to_contain_text("Your session ended")
    await expect(page.locator("#signin-message")).to_contain_text("was revoked")
    await expect(page.get_by_label("API key")).to_be_focused()


async def test_an_expired_session_returns_to_sign_in_with_a_message(page: Page, keyed_web_stack: Stack) -> None:
    viewer = new_member(keyed_web_stack, "viewer")
    await sign_in(page, keyed_web_stack, viewer.key)
    await expect(page.locator("#who-text")).to_contain_text("(viewer)")
    # the clock of the tab moves past the session's end (the server's 15 minutes are too long to wait)
    await page.evaluate(
        """() => {
            const session = JSON.parse(sessionStorage.getItem("ragstream.session"));
            session.expires_at = new Date(Date.now() - 1000).toISOString();
            sessionStorage.setItem("ragstream.session", JSON.stringify(session));
        }"""
    )

    await page.reload()

    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await expect(page.locator("#signin-message")).to_contain_text("Your session expired at")
    assert await page.evaluate("() => sessionStorage.getItem('ragstream.session')") is None


async def test_each_tenants_site_may_use_only_that_tenants_keys_on_every_service(keyed_web_stack: Stack) -> None:
    a, b = new_member(keyed_web_stack, "admin"), new_member(keyed_web_stack, "admin")
    site_a, site_b = f"https://{new_id('a')}.example", f"https://{new_id('b')}.example"
    gateway, progress, chat = (keyed_web_stack.url(s) for s in ("ingest-gateway", "progress", "chat"))
    async with httpx.AsyncClient(timeout=30) as http:
        for member, site in ((a, site_a), (b, site_b)):
            set_origins = await http.put(f"{gateway}/v1/tenant/origins", json={"origins": [site]}, headers=member.auth)
            assert set_origins.status_code == 200, set_origins.text
        routes = [f"{gateway}/v1/collections", f"{progress}/v1/jobs", f"{chat}/v1/conversations"]

        for url in routes:
            preflights = {
                origin: await http.options(
                    url,
                    headers={
                        "Origin": origin,
                        "Access-Control-Request-Method": "GET",
                        "Access-Control-Request-Headers": "authorization",
                    },
                )
                for origin in (site_a, site_b, "https://evil.example")
            }
            own = await http.get(url, headers={"Origin": site_a, **a.auth})
            foreign = await http.get(url, headers={"Origin": site_b, **a.auth})

            assert [p.status_code for p in preflights.values()] == [200, 200, 400], url
            assert preflights[site_b].headers["access-control-allow-origin"] == site_b
            assert "access-control-allow-origin" not in preflights["https://evil.example"].headers
            assert own.status_code == 200, (url, own.text)
            assert own.headers["access-control-allow-origin"] == site_a
            assert foreign.status_code == 403, (url, foreign.text)
            assert f"pages of {site_b} may not use keys of tenant {a.tenant_id}" in foreign.json()["detail"]
            assert "access-control-allow-origin" not in foreign.headers

    feed = progress.replace("http://", "ws://") + f"/v1/jobs/stream?access_token={a.key}"
    async with websockets.connect(feed, origin=site_a) as socket:
        await socket.ping()
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(feed, origin=site_b):
            pass
    assert refused.value.response.status_code == 403
