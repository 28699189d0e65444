"""Follow-up questions made standalone, deterministically (the extractive provider's rewrite).

A follow-up that is short (at most ``SHORT_TERMS`` key terms), leads with a pronoun or a
continuation ("and", "what about"), or refers back with a pronoun, is searched together with
the key terms of the previous question's retrieval query that it does not already contain.
Chains of follow-ups keep their topic because each carries the previous *query*.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["SHORT_TERMS", "Turn", "key_terms", "rewrite_follow_up", "terms"]

SHORT_TERMS = 2
MAX_CARRIED = 8
_WORD = re.compile(r"[\w']+", re.UNICODE)
_STOP_WORDS = (
    "a an and are as at be by did do does for from has have how i in is it its of on or that the this to "
    "was what when where which who why with you your"
)
_STOP = frozenset(_STOP_WORDS.split())
_REFERRING_WORDS = (
    "it its it's they them their theirs this that these those he him his she her hers there then one ones "
    "such same former latter"
)
_REFERRING = frozenset(_REFERRING_WORDS.split())
_LEADS = ("and ", "also ", "but ", "so ", "what about ", "how about ", "and what ", "why not ")


@dataclass(frozen=True)
class Turn:
    """One message of a conversation: who said it, what, and (for questions) the query searched."""

    role: str  # "user" or "assistant"
    content: str
    query: str = ""


def terms(text: str) -> set[str]:
    """The lower-cased words of ``text`` that are not stop words."""
    return {w for w in (m.lower() for m in _WORD.findall(text)) if w not in _STOP}


def key_terms(text: str) -> list[str]:
    """The words of ``text`` that name something: neither stop words nor words referring back, in order, once."""
    seen: list[str] = []
    for word in (m.lower() for m in _WORD.findall(text)):
        if word not in _STOP and word not in _REFERRING and word not in seen:
            seen.append(word)
    return seen


def rewrite_follow_up(question: str, previous_query: str) -> str:
    """``question``, plus the previous query's key terms when it depends on them; deterministic."""
    question = question.strip()
    if not previous_query.strip():
        return question
    words = [m.lower() for m in _WORD.findall(question)]
    lowered = question.lower()
    depends = (
        len(key_terms(question)) <= SHORT_TERMS
        or (bool(words) and words[0] in _REFERRING)
        or lowered.startswith(_LEADS)
        or any(w in _REFERRING for w in words)
    )
    if not depends:
        return question
    carried = [t for t in key_terms(previous_query) if t not in words][:MAX_CARRIED]
    return f"{question} {' '.join(carried)}" if carried else question
