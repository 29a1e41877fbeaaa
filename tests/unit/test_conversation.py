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
        ([{"role": "user", "content": "x" * 1_700 + "\ud83d" + "y" * 1_000}], r"messages\[0\].content: is not valid"),
        (
            [{"role": "system", "content": "be \ud83d brief"}, {"role": "user", "content": "hi"}],
            r"messages\[0\].content",
        ),
    ],
    ids=[
        "none",
        "string",
        "empty",
        "no-user",
        "not-object",
        "role-int",
        "content-dict",
        "part-int",
        "surrogate",
        "surrogate-outside-the-window",
        "surrogate-in-a-system-message",
    ],  # fmt: skip
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
    with pytest.raises(QueryError, match="query: is not valid Unicode"):  # all of it goes to the provider
        read_history(None, "x" * 1_700 + "\ud83d" + "y" * 1_000)


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
    assert context is None  # the query fills the window: it is read alone


def test_the_context_leaves_the_query_whole_in_the_window():
    """Long earlier turns must not push the start of the query out of what the cascade reads."""
    from classifier.window import window

    query = "Summarize the following report for an executive audience. " + "Revenue grew in every region. " * 37
    earlier = ("def f(x):\n    return x\n" * 40, "SELECT * FROM t;\n" * 60)
    alone, context = classifier_text(Conversation(query, earlier), context_turns=3)
    assert alone == query and context.endswith("\n" + query)
    assert window(context) == context  # nothing more is cut: the cascade reads all of it
    kept = len(context) - len(query) - 1  # the room left: the end of the most recent turn fills it
    assert len(context) == QUERY_HEAD_CHARS + QUERY_TAIL_CHARS and context == earlier[-1][-kept:] + "\n" + query
    short = classifier_text(Conversation("now make it faster", ("a" * 5000, "b" * 5000)), context_turns=3)[1]
    assert short == "a" * (QUERY_HEAD_CHARS + QUERY_TAIL_CHARS - len("now make it faster") - 2 - CONTEXT_CHARS) \
        + "\n" + "b" * CONTEXT_CHARS + "\nnow make it faster"  # fmt: skip


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


def test_a_follow_up_held_back_by_the_escalation_budget_does_not_switch_the_label():
    """Held back means below the threshold: no surer than an escalated guess, so the conversation keeps its label."""
    from classifier.results import BUDGET_SPENT, Decision, StageResult
    from routing.router import _switches

    sure = Decision("code", "embedding", 0.95, False, (StageResult("embedding", "code", 0.95, 0.001, "confident"),))
    held = Decision("code", "embedding", 0.95, False, (StageResult("embedding", "code", 0.95, 0.001, BUDGET_SPENT),))
    assert _switches(sure, 0.9) and held.held_back and not _switches(held, 0.9)
