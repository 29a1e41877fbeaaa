"""Read an OpenAI-style chat request into what the classifier reads: the query and the earlier user turns.

One reader for `route_and_complete`, `aroute_and_complete` and the proxy hook. Every OpenAI chat message shape is
accepted: system, developer, user, assistant (with `tool_calls` and `content: null`), tool and function roles, and
content as a string or a list of parts. Only the text parts of user turns are classified; the rest is ignored.

The classifier reads a bounded window, never the whole prompt: the head and tail of the query (`QUERY_HEAD_CHARS`
+ `QUERY_TAIL_CHARS`) and, in the room it leaves in that window, at most `CONTEXT_CHARS` of each earlier user
turn. A prompt of any length is routed; the full messages still go to the model.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from classifier.data import check_query, check_unicode
from classifier.errors import QueryError
from classifier.window import HEAD_CHARS, TAIL_CHARS, window

__all__ = [
    "CONTEXT_CHARS",
    "QUERY_HEAD_CHARS",
    "QUERY_TAIL_CHARS",
    "REFER_BACK_MAX_WORDS",
    "REFER_BACK_WORDS",
    "Conversation",
    "classifier_text",
    "earlier_text",
    "message_text",
    "read_history",
    "read_messages",
    "refers_back",
    "window",
]

QUERY_HEAD_CHARS = HEAD_CHARS
"""Characters read from the start of a long query (the cascade's own window, `classifier.window`)."""
QUERY_TAIL_CHARS = TAIL_CHARS
"""Characters read from the end of a long query (a question after a pasted document)."""
CONTEXT_CHARS = 1_000
"""Characters read from the end of each earlier user turn."""

REFER_BACK_MAX_WORDS = 12
"""A follow-up longer than this is never read as only referring back."""
REFER_BACK_WORDS = frozenset(
    """
a an the and or but so then now also too just again still even only very really quite much more less bit little lot
to of in on for with about at by from as into than like
i me my we us our you your it its they them their this that these those there here what which who how why when
be is are was were been do does did done can could would will should may might must shall have has had
please thanks thank ok okay yes no not don't doesn't didn't can't isn't i'm it's that's what's let's
above previous last earlier same first second third one two three part parts step steps bit
explain elaborate expand clarify simplify shorten lengthen summarize summarise rephrase rewrite reword redo retry
try continue go keep show tell give make fix correct check double-check verify improve polish edit change update
add remove mean meant understand got get said say wrote write think sure repeat finish proceed walk through
answer answers example examples version detail details detailed depth shorter longer clearer simpler better worse
formal informal casual concise brief sentence sentences paragraph paragraphs word words point points tone way
result results output response reply another other else wrong right correct clear sound sounds
""".split()
)
"""Words a follow-up that only refers back to the conversation is made of ("make it shorter", "explain that
step by step", "try again"): pronouns, function words and generic edit or explain requests. Chosen from general
categories; a follow-up with any other word (a task or topic: "poem", "Python", "integral", "capital") may switch."""
_WORD = re.compile(r"[a-z]+(?:[-'][a-z]+)*|\d+|[^\sa-z\d.,!?;:()\"]+")

_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


@dataclass(frozen=True)
class Conversation:
    """The last user turn with text (`query`) and the user turns with text before it (`earlier`), oldest first."""

    query: str
    earlier: tuple[str, ...] = ()


def message_text(content: object, *, field: str = "content") -> str:
    """The text of a message's content: a string, a list of parts (text parts joined), or None (no text)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence) and not isinstance(content, (bytes, bytearray)):
        texts = []
        for j, part in enumerate(content):
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, Mapping):
                if part.get("type") == "text" and "text" in part:
                    if not isinstance(part["text"], str):
                        raise QueryError(
                            f"must be a string, got {type(part['text']).__name__}", field=f"{field}[{j}].text"
                        )
                    texts.append(part["text"])
            else:
                raise QueryError(f"must be a string or an object, got {type(part).__name__}", field=f"{field}[{j}]")
        return "\n".join(texts)
    raise QueryError(f"must be a string, a list of parts or null, got {type(content).__name__}", field=field)


def read_messages(messages: object, *, field: str = "messages") -> Conversation:
    """The conversation of a chat request; QueryError names the field when no user turn has text."""
    turns = _user_texts(messages, field)
    if not turns:
        raise QueryError("needs a user message with text to classify", field=field)
    return Conversation(turns[-1], tuple(turns[:-1]))


def read_history(history: object, query: object, *, field: str = "history") -> Conversation:
    """The conversation of `route_and_complete(query, history=...)`: `query` follows the history's user turns."""
    if not isinstance(query, str):
        raise QueryError(f"must be a string, got {type(query).__name__}", field="query")
    check_query(query, field="query")  # the whole text: all of it goes to the provider
    return Conversation(query, tuple(_user_texts(history, field)) if history is not None else ())


def refers_back(text: str) -> bool:
    """Whether a follow-up only refers back to the conversation (every word in REFER_BACK_WORDS, few words)."""
    words = _WORD.findall(text.casefold().replace("’", "'"))
    return 0 < len(words) <= REFER_BACK_MAX_WORDS and all(w in REFER_BACK_WORDS for w in words)


def _user_texts(messages: object, field: str) -> list[str]:
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise QueryError(f"must be a list of chat messages, got {type(messages).__name__}", field=field)
    texts = []
    for i, m in enumerate(messages):
        where = f"{field}[{i}]"
        if not isinstance(m, Mapping):
            raise QueryError(f"must be an object, got {type(m).__name__}", field=where)
        role = m.get("role")
        if not isinstance(role, str) or role not in _ROLES:
            raise QueryError(f"unknown role {role!r}; expected one of {sorted(_ROLES)}", field=f"{where}.role")
        text = message_text(m.get("content"), field=f"{where}.content")
        if role == "user" and text.strip():
            texts.append(check_query(text, field=f"{where}.content"))  # every message goes to the provider whole
        else:
            check_unicode(text, field=f"{where}.content")
    return texts


def earlier_text(conversation: Conversation, context_turns: int) -> str:
    """The recent earlier user turns, as the classifier read them when each was the query (one turn: the same)."""
    return "\n".join(window(t) for t in conversation.earlier[-max(1, context_turns) :])


def classifier_text(conversation: Conversation, context_turns: int) -> tuple[str, str | None]:
    """(the query's window, the query's window after its recent user turns, or None without context).

    The text with context fits the cascade's window whole, so the query is read in full: the earlier turns (the
    end of each, at most `CONTEXT_CHARS`, the most recent first) get the room the query leaves. A query that
    fills the window is read alone."""
    alone = window(conversation.query)
    room = HEAD_CHARS + TAIL_CHARS - len(alone)
    parts: list[str] = []
    for turn in reversed(conversation.earlier[-context_turns:] if context_turns else ()):
        take = min(CONTEXT_CHARS, room - 1)  # one character for the newline that joins it
        if take <= 0:
            break
        parts.append(turn[-take:])
        room -= len(parts[-1]) + 1
    if not parts:
        return alone, None
    return alone, "\n".join([*reversed(parts), alone])
