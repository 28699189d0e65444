"""E-mail (RFC 822 / MIME, ``.eml``) as an HTML page Docling reads.

The subject becomes the title (so every chunk is embedded under it); sender, recipients, date
and the names of attachments form the first paragraphs; the body follows: the text/plain part
when there is one, else the text of the HTML part (one paragraph per block, no scripts or styles).
"""

from __future__ import annotations

import email
import email.policy
import html
import re
from email.message import EmailMessage, MIMEPart

from ragstream_core.errors import UnreadableDocument

_HEADERS = ("From", "To", "Cc", "Date")
_BLOCKS = ["p", "div", "li", "tr", "table", "ul", "ol", "blockquote", "pre", "h1", "h2", "h3", "h4", "h5", "h6", "hr"]


def email_as_html(data: bytes, *, file_name: str) -> bytes:
    """One HTML page of the message; raises ``UnreadableDocument`` when it holds nothing to index."""
    message = email.message_from_bytes(data, policy=email.policy.default)
    if not isinstance(message, EmailMessage) or not message.keys():
        raise UnreadableDocument(f"{file_name!r} is not an e-mail message: it has no headers")
    subject = _header(message, "Subject") or file_name
    body_part = message.get_body(preferencelist=("plain", "html"))
    context = [f"{name}: {value}" for name in _HEADERS if (value := _header(message, name))]
    attachments = _attachment_names(message, body=body_part)
    if attachments:
        context.append(f"Attachments: {', '.join(attachments)}")
    parts = [f"<h1>{html.escape(subject)}</h1>"]
    parts.extend(f"<p>{html.escape(line)}</p>" for line in context)
    if body_part is not None:
        content = _content(body_part)
        if body_part.get_content_subtype() == "html":
            content = _html_text(content)
        parts.extend(_plain_paragraphs(content))
    page = "<!DOCTYPE html><html><head><meta charset='utf-8'><title>{}</title></head><body>{}</body></html>"
    return page.format(html.escape(subject), "\n".join(parts)).encode()


def _header(message: EmailMessage, name: str) -> str:
    try:
        value = message.get(name)
    except (ValueError, IndexError, TypeError):  # a header too malformed to decode: leave it out
        return ""
    return " ".join(str(value or "").split())


def _content(part: MIMEPart) -> str:
    try:
        return str(part.get_content())
    except (LookupError, ValueError):  # unknown charset or broken transfer encoding
        payload = part.get_payload(decode=True)
        return payload.decode("utf-8", errors="replace") if isinstance(payload, bytes) else str(payload or "")


def _attachment_names(message: EmailMessage, *, body: MIMEPart | None) -> list[str]:
    names: list[str] = []
    for part in message.walk():
        if part is body or part.is_multipart():
            continue
        name = part.get_filename()
        if name is None and part.get_content_type() == "message/rfc822":
            name = "forwarded message"
        if name is not None:
            names.append(" ".join(name.split()))
    return list(dict.fromkeys(names))


def _plain_paragraphs(text: str) -> list[str]:
    paragraphs = re.split(r"\n[ \t]*\n", text.replace("\r\n", "\n").strip())
    return [
        "<p>" + "<br>".join(html.escape(line.rstrip()) for line in paragraph.splitlines()) + "</p>"
        for paragraph in paragraphs
        if paragraph.strip()
    ]


def _html_text(markup: str) -> str:
    """The text of an HTML body: one paragraph per block element, inline markup dropped."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(markup, "html.parser")
    for tag in soup(["script", "style", "head", "title", "meta", "link"]):
        tag.decompose()
    for line_break in soup("br"):
        line_break.replace_with("\n")
    for block in soup(_BLOCKS):
        block.insert_before("\n\n")
        block.insert_after("\n\n")
    paragraphs = re.split(r"\n[ \t\xa0]*\n", soup.get_text())
    lines = ("\n".join(" ".join(line.split()) for line in paragraph.split("\n")) for paragraph in paragraphs)
    return "\n\n".join(paragraph.strip("\n") for paragraph in lines if paragraph.strip())
