"""WebVTT subtitles and transcripts as chunks of consecutive cues under their time range.

Each cue reads ``"Speaker: text"`` (the speaker from its ``<v>`` tag; consecutive cues of one
speaker join one line); markup and cue settings are dropped; notes, styles and regions are
skipped. Cues are packed in order up to the model's token limit, and the chunk's heading path is
its time range (``00:00:11 - 00:00:38``), which is shown with answers but not embedded.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

from ragstream_core.errors import UnreadableDocument
from ragstream_parser.docling_parser import Chunk
from ragstream_parser.packing import TokenCounter, Unit, pack, split_to_fit

_TIMESTAMP = r"(?:(\d+):)?(\d{1,2}):(\d{2})(?:[.,](\d{1,3}))?"
_TIMING = re.compile(rf"^\s*{_TIMESTAMP}\s+-->\s+{_TIMESTAMP}")
_VOICE = re.compile(r"<v(?:\.[^\s>]*)?[ \t]+([^>]+)>")
_TAG = re.compile(r"<[^>]*>")


@dataclass(frozen=True)
class Cue:
    start_s: float
    end_s: float
    speaker: str
    text: str


def read_cues(data: bytes, *, file_name: str) -> list[Cue]:
    """The cues of a WebVTT file in file order; raises ``UnreadableDocument`` if it is not one or has none."""
    text = data.decode("utf-8-sig", errors="replace").replace("\r\n", "\n").replace("\r", "\n")
    blocks = re.split(r"\n[ \t]*\n", text.strip())
    if not blocks[0].startswith("WEBVTT"):
        raise UnreadableDocument(f"{file_name!r} is not WebVTT: it does not start with 'WEBVTT'")
    cues: list[Cue] = []
    for block in blocks[1:]:
        lines = block.split("\n")
        timing_at = next((i for i, line in enumerate(lines[:2]) if "-->" in line), None)
        if timing_at is None:  # NOTE, STYLE, REGION or a stray line
            continue
        timing = _TIMING.match(lines[timing_at])
        if timing is None:
            continue
        payload = " ".join(line.strip() for line in lines[timing_at + 1 :] if line.strip())
        voice = _VOICE.search(payload)
        words = html.unescape(_TAG.sub("", payload)).split()
        if words:
            cues.append(
                Cue(
                    start_s=_seconds(*timing.groups()[:4]),
                    end_s=_seconds(*timing.groups()[4:]),
                    speaker=" ".join(voice.group(1).split()) if voice else "",
                    text=" ".join(words),
                )
            )
    if not cues:
        raise UnreadableDocument(f"{file_name!r} contains no cues with text")
    return cues


def cue_chunks(cues: list[Cue], *, count_tokens: TokenCounter, max_tokens: int) -> list[Chunk]:
    """Chunks of consecutive cues, each at most ``max_tokens`` tokens.

    Every cue is in exactly one chunk, except a cue too long for one, which is split across consecutive ones.
    """
    units: list[tuple[Cue, Unit]] = []
    for cue in cues:
        line = f"{cue.speaker}: {cue.text}" if cue.speaker else cue.text
        for piece in split_to_fit(line, budget=max_tokens, count_tokens=count_tokens):
            units.append((cue, Unit(text=piece, embed=piece, tokens=count_tokens(piece))))
    chunks: list[Chunk] = []
    done = 0
    for group in pack((unit for _, unit in units), budget=max_tokens):
        group_cues = [cue for cue, _ in units[done : done + len(group)]]
        done += len(group)
        text = "\n".join(_lines(group_cues, group))
        start, end = min(c.start_s for c in group_cues), max(c.end_s for c in group_cues)
        chunks.append(
            Chunk(
                index=len(chunks),
                text=text,
                embed_text=text,
                tokens=count_tokens(text),
                heading_path=[f"{_clock(start)} - {_clock(end)}"],
            )
        )
    return chunks


def _lines(cues: list[Cue], units: list[Unit]) -> list[str]:
    """One line per turn: a cue of the same speaker as the line before joins it."""
    lines: list[str] = []
    previous = None
    for cue, unit in zip(cues, units, strict=True):
        if lines and cue.speaker and previous is not None and previous.speaker == cue.speaker:
            lines[-1] += " " + unit.text.removeprefix(f"{cue.speaker}: ")
        else:
            lines.append(unit.text)
        previous = cue
    return lines


def _seconds(hours: str | None, minutes: str, seconds: str, fraction: str | None) -> float:
    return int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds) + float(f"0.{fraction or 0}")


def _clock(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}"
