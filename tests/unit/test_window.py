import pytest

from classifier.window import HEAD_CHARS, TAIL_CHARS, window


def test_short_text_is_read_whole():
    text = "x" * (HEAD_CHARS + TAIL_CHARS)
    assert window(text) is text


def test_long_text_keeps_head_and_tail():
    text = "Summarize this:" + "m" * 1_000_000 + "What is the main point?"
    w = window(text, 100, 30)
    assert w == text[:100] + "\n" + text[-30:]
    assert w.startswith("Summarize this:") and w.endswith("What is the main point?")
    assert len(w) == 131


def test_padding_cannot_push_the_words_out_of_the_window():
    """Before: 1,500 spaces, the query, 600 spaces: the window held only spaces, and got a confident label."""
    query = "integrate x^2 from 0 to 3"
    assert window(" " * 1_500 + query + "\n" * 600) == query
    long_query = "q" * 3_000
    assert window("\t" * 5_000 + long_query + " " * 5_000, 100, 30) == "q" * 100 + "\n" + "q" * 30


@pytest.mark.parametrize("pad", ["\u200b", "\ufeff", "\x00", "\u2028", " \u200b\t"])
def test_invisible_padding_cannot_push_the_words_out_of_the_window(pad):
    """Zero-width spaces, byte-order marks and NULs are no words either: the review found `" \\u200b" * 3000`
    around a code request sent it to `default`."""
    query = "write python code to sort a list"
    assert window(pad * 3_000 + query + pad * 3_000) == query


def test_a_text_of_invisible_characters_only_trims_to_nothing():
    assert window("\u200b" * 5_000) == ""


def test_invisible_characters_inside_the_text_are_kept():
    text = "a\u200bb" * 1_000
    assert window(text, 100, 30) == text[:100] + "\n" + text[-30:]
