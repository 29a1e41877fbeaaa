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
