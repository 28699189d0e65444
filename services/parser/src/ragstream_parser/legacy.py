"""LibreOffice, headless: legacy Office and OpenDocument files converted to Office Open XML.

Each conversion runs its own ``soffice`` process with its own throwaway user profile, so
concurrent conversions (threads, processes, services on one machine) never share a profile lock;
macros are disabled and links are never updated, so converting reads nothing beyond the file.
A conversion that outlives its timeout is killed with its whole process group.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from ragstream_core.errors import UnreadableDocument

#: Debian packages that provide ``soffice`` for the three kinds of document
DEBIAN_PACKAGES = ("libreoffice-writer-nogui", "libreoffice-calc-nogui", "libreoffice-impress-nogui")
DEFAULT_TIMEOUT_S = 120.0

#: macros off (security level "very high", execution disabled); links never updated on load
_PROFILE_SETTINGS = """<?xml version="1.0" encoding="UTF-8"?>
<oor:items xmlns:oor="http://openoffice.org/2001/registry" xmlns:xs="http://www.w3.org/2001/XMLSchema"
 xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
 <item oor:path="/org.openoffice.Office.Common/Security/Scripting">
  <prop oor:name="MacroSecurityLevel" oor:op="fuse"><value>3</value></prop></item>
 <item oor:path="/org.openoffice.Office.Common/Security/Scripting">
  <prop oor:name="DisableMacrosExecution" oor:op="fuse"><value>true</value></prop></item>
 <item oor:path="/org.openoffice.Office.Writer/Content/Update">
  <prop oor:name="Link" oor:op="fuse"><value>0</value></prop></item>
 <item oor:path="/org.openoffice.Office.Calc/Content/Update">
  <prop oor:name="Link" oor:op="fuse"><value>0</value></prop></item>
</oor:items>
"""


def soffice_path(*, path: str | None = None) -> str | None:
    """Where ``soffice`` is on ``path`` (default: ``$PATH``), or ``None``."""
    return shutil.which("soffice", path=path)


def convert(
    data: bytes,
    *,
    file_name: str,
    source_suffix: str,
    target_suffix: str,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    path: str | None = None,
) -> bytes:
    """``data`` (a ``.{source_suffix}`` file) converted by LibreOffice to ``.{target_suffix}``.

    Raises ``UnreadableDocument`` when LibreOffice is missing, fails, times out or produces
    nothing; the temporary files and profile are removed in every case.
    """
    soffice = soffice_path(path=path)
    if soffice is None:
        raise UnreadableDocument(
            f"cannot read {file_name!r}: .{source_suffix} files need LibreOffice (soffice), which is not "
            f"installed on the parser's machine; install the Debian packages {' '.join(DEBIAN_PACKAGES)}"
        )
    with tempfile.TemporaryDirectory(prefix="ragstream-soffice-") as work:
        root = Path(work)
        profile = root / "profile"
        (profile / "user").mkdir(parents=True)
        (profile / "user" / "registrymodifications.xcu").write_text(_PROFILE_SETTINGS, encoding="utf-8")
        source = root / f"document.{source_suffix}"
        source.write_bytes(data)
        outdir = root / "out"
        command = [
            soffice,
            f"-env:UserInstallation={profile.as_uri()}",
            "--headless",
            "--invisible",
            "--norestore",
            "--nologo",
            "--nodefault",
            "--nolockcheck",
            "--convert-to",
            target_suffix,
            "--outdir",
            str(outdir),
            str(source),
        ]
        stderr = _run(command, file_name=file_name, timeout_s=timeout_s)
        converted = outdir / f"document.{target_suffix}"
        if not converted.is_file() or converted.stat().st_size == 0:
            reason = stderr.strip().splitlines()[-1] if stderr.strip() else "no output file"
            raise UnreadableDocument(f"LibreOffice could not convert {file_name!r} to .{target_suffix}: {reason}")
        return converted.read_bytes()


def _run(command: list[str], *, file_name: str, timeout_s: float) -> str:
    """Run one conversion in its own session; kill the whole group (soffice forks soffice.bin) on timeout."""
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        _, stderr = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        _kill_group(process)
        raise UnreadableDocument(f"LibreOffice did not finish converting {file_name!r} within {timeout_s:g} s") from exc
    text = stderr.decode("utf-8", errors="replace")
    if process.returncode != 0:
        raise UnreadableDocument(
            f"LibreOffice could not convert {file_name!r} (exit {process.returncode}): {text.strip()[-500:]}"
        )
    return text


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):  # the group ended on its own meanwhile
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
