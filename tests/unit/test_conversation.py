"""The conversation reader: every OpenAI chat message shape in, the texts the classifier reads out."""

import pytest

from classifier.errors import QueryError
from routing.conversation import (
    CONTEXT_CHARS,
    QUERY_HEAD_CHARS,
    QUERY_TAIL_CHARS,
    Conversation,
    classifier_text,
    read_history,
    read_messages,
    refers_back,
    window,
)


def test_every_message_shape_is_read():
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "developer", "content": [{"type": "text", "text": "house rules"}]},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "first"},
                {"type": "image_url", "image_url": {}},
                {"type": "input_audio", "input_audio": {}},
            ],
        },
        {"role": "assistant", "content": None, "tool_calls": [{"id": "1", "type": "function", "function": {}}]},
        {"role": "tool", "tool_call_id": "1", "content": "tool output"},
        {"role": "function", "name": "f", "content": "legacy output"},
        {"role": "assistant", "content": [{"type": "text", "text": "done"}], "refusal": None},
        {"role": "user", "content": "   "},
        {"role": "user", "content": ["second", {"type": "text", "text": "part"}]},
    ]
    assert read_messages(messages) == Conversation("second\npart", ("first",))


@pytest.mark.parametrize(
    ("messages", "field"),
    [
        (None, "messages"),
        ("hi", "messages"),
        ([], "messages"),
        ([{"role": "assistant", "content": "x"}], "messages"),
        ([5], r"messages\[0\]"),
        ([{"role": 1, "content": "x"}], r"messages\[0\].role"),
        ([{"role": "user", "content": {"text": "x"}}], r"messages\[0\].content"),
        ([{"role": "user", "content": [3]}], r"messages\[0\].content\[0\]"),
        ([{"role": "user", "content": "\ud83d lone"}], r"messages\[0\].content"),
    ],
    ids=["none", "string", "empty", "no-user", "not-object", "role-int", "content-dict", "part-int", "surrogate"],
)
def test_malformed_requests_name_the_field(messages, field):
    with pytest.raises(QueryError, match=field):
        read_messages(messages)


def test_history_and_query():
    assert read_history(None, "q") == Conversation("q")
    assert read_history([{"role": "user", "content": "a"}], "q") == Conversation("q", ("a",))
    with pytest.raises(QueryError, match="query"):
        read_history(None, "  ")
    with pytest.raises(QueryError, match="query: must be a string"):
        read_history(None, b"bytes")


def test_window_reads_head_and_tail_of_long_text_only():
    short = "x" * (QUERY_HEAD_CHARS + QUERY_TAIL_CHARS)
    assert window(short) is short
    long = "H" * QUERY_HEAD_CHARS + "m" * 500_000 + "T" * QUERY_TAIL_CHARS
    w = window(long)
    assert w == "H" * QUERY_HEAD_CHARS + "\n" + "T" * QUERY_TAIL_CHARS


def test_a_query_of_any_length_is_accepted():
    conv = read_history([{"role": "user", "content": "y" * 1_000_000}], "z" * 1_000_000)
    alone, context = classifier_text(conv, context_turns=3)
    assert len(alone) == QUERY_HEAD_CHARS + QUERY_TAIL_CHARS + 1
    assert len(context) == CONTEXT_CHARS + 1 + len(alone)


def test_context_turns_zero_reads_the_query_alone():
    assert classifier_text(Conversation("q", ("a", "b")), context_turns=0) == ("q", None)
    assert classifier_text(Conversation("q", ("a", "b")), context_turns=1) == ("q", "b\nq")


@pytest.mark.parametrize(
    "text",
    [
        "Make it shorter.",
        "Explain that step by step.",
        "try again",
        "Why?",
        "Can you double-check your answer?",
        "thanks! can you go into more depth?",
    ],
)
def test_follow_ups_that_only_refer_back(text):
    assert refers_back(text)


@pytest.mark.parametrize(
    "text",
    [
        "Now write a poem about this.",
        "Now write a Python function for it.",
        "What is the capital of Portugal?",
        "Compute the integral of x^2 as well.",
        "",
        "make it " + "shorter " * 20,
    ],
)
def test_follow_ups_that_bring_a_task_or_are_long(text):
    assert not refers_back(text)
