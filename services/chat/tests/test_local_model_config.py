"""Configuring the local model: what is accepted, and a clear refusal at start-up when it cannot load.

These run with or without the local-model extra; the model itself is tested in test_local_model.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from ragstream_chat.grounding import Citer, excerpt
from ragstream_chat.local_model import LocalModelUnavailable, local_model_path
from ragstream_chat.settings import ChatSettings
from ragstream_devstack.servers import python_env


def start_chat(local_model: str, *, without_llama_cpp: bool = False) -> subprocess.CompletedProcess[str]:
    """Start the chat service as ``make run`` does (it exits before connecting when the model cannot load)."""
    hide = "import sys; sys.modules['llama_cpp'] = None; " if without_llama_cpp else ""  # import fails as if absent
    return subprocess.run(
        [sys.executable, "-c", f"{hide}from ragstream_chat.main import main; main()"],
        env=python_env({"RAGSTREAM_CHAT_LOCAL_MODEL": local_model, "RAGSTREAM_CHAT_HTTP_PORT": "1"}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_chat_refuses_to_start_without_the_extra_saying_what_to_install() -> None:
    result = start_chat("smollm2", without_llama_cpp=True)

    assert result.returncode == 1
    assert "chat cannot start: RAGSTREAM_CHAT_LOCAL_MODEL='smollm2' needs llama-cpp-python" in result.stderr
    assert "make run LLM=local" in result.stderr


def test_chat_refuses_to_start_with_a_missing_model_file(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.gguf"

    result = start_chat(str(missing))

    assert result.returncode == 1
    assert "chat cannot start: RAGSTREAM_CHAT_LOCAL_MODEL=" in result.stderr
    # with the extra the file is missing; without it, llama-cpp-python is
    assert "no such file" in result.stderr or "needs llama-cpp-python" in result.stderr


def test_a_model_name_that_is_neither_packaged_nor_a_gguf_file_is_refused() -> None:
    with pytest.raises(LocalModelUnavailable, match=r"neither a packaged model \(smollm2\) nor the path of a \.gguf"):
        local_model_path("gpt-4o")


def test_a_gguf_path_that_exists_is_the_model(tmp_path: Path) -> None:
    model = tmp_path / "tiny.gguf"
    model.write_bytes(b"GGUF")

    assert local_model_path(str(model)) == model.resolve()


def test_local_provider_as_default_needs_a_model() -> None:
    with pytest.raises(ValidationError, match="RAGSTREAM_CHAT_PROVIDER=local needs RAGSTREAM_CHAT_LOCAL_MODEL"):
        ChatSettings(provider="local", local_model="")


def test_a_long_passage_is_cut_to_its_sentences_about_the_question() -> None:
    text = "Ducks eat grain. " * 20 + "Mallards migrate south when winter comes. " + "Geese honk loudly. " * 20

    cut = excerpt(text, "When do mallards migrate?", limit=120)

    assert "Mallards migrate south when winter comes." in cut
    assert len(cut) <= 120


def test_a_short_passage_is_kept_whole() -> None:
    assert excerpt("  Mallards migrate.\nIn winter.  ", "When?", limit=100) == "Mallards migrate.\nIn winter."


def test_each_sentence_is_cited_with_the_passage_holding_its_words() -> None:
    citer = Citer(["Mallards migrate south when winter comes.", "The Pekin duck is raised for its meat."])

    streamed = "".join(
        citer.feed(d) for d in ["The Pekin", " duck is raised for", " meat. Mallards mig", "rate south."]
    )

    assert streamed + citer.finish() == "The Pekin duck is raised for meat. [2] Mallards migrate south. [1]"


def test_a_sentence_the_model_cited_or_no_passage_supports_gets_no_marker() -> None:
    citer = Citer(["Mallards migrate south when winter comes."])

    streamed = citer.feed("Mallards migrate [1]. The capital of France is Paris. I don't know.")

    assert streamed + citer.finish() == "Mallards migrate [1]. The capital of France is Paris. I don't know."


def test_a_full_stop_after_an_abbreviation_or_initial_does_not_end_the_sentence() -> None:
    citer = Citer(["Thomas J. Watson met Dr. Murray in Armonk."])

    streamed = citer.feed("Thomas J. Watson met Dr. Murray in Armonk. ")

    assert streamed == "Thomas J. Watson met Dr. Murray in Armonk. [1] "
