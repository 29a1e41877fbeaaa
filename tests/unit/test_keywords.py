import pytest

from classifier.errors import ConfigError
from classifier.serving.keywords import KeywordRules, load_rules


@pytest.fixture(scope="module")
def rules():
    return KeywordRules(load_rules())


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("```python\nprint(1)\n```\nwhy does this fail", "code"),
        ("def add(a, b):\n    return a - b\nfix this", "code"),
        ('Traceback (most recent call last):\n  File "x.py", line 1', "code"),
        ("SELECT name FROM users WHERE id = 3 is slow", "code"),
        ("12*7+3", "math"),
        ("what is the derivative of sin(x)^2", "math"),
        ("Write a poem about autumn leaves", "creative"),
    ],
)
def test_rules_fire_on_clear_cases(rules, text, label):
    r = rules.classify(text)
    assert r.label == label and r.note.startswith("rule:")


@pytest.mark.parametrize(
    "text",
    [
        "write a script for a short film about two strangers on a train",
        "what % of voters in Ohio turned out in 2020?",
        "how many moons does Jupiter have",
        "can you implement a four-day week at my company?",
        "rewrite this email in a friendlier tone",
        "stone soup recipe",  # 'tone' inside a word
        "write a poem generator in Python",
    ],
    ids=["film-script", "percent", "how-many", "implement", "tone", "substring", "poem-generator"],
)
def test_tutorial_traps_do_not_fire(rules, text):
    assert rules.classify(text).label is None


def test_phrases_never_match_inside_words(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("rules:\n  - {name: t, label: creative, phrases: [tone]}\n")
    r = KeywordRules(load_rules(p))
    assert r.classify("change the tone please").label == "creative"
    assert r.classify("a stone wall").label is None
    assert r.classify("the tones of blue").label is None


def test_conflicting_rules_abstain(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text(
        "rules:\n  - {name: a, label: code, phrases: [regex]}\n  - {name: b, label: creative, phrases: [poem]}\n"
    )
    r = KeywordRules(load_rules(p)).classify("a poem about regex")
    assert r.label is None and r.note.startswith("conflict:")


def test_calibrate_switches_off_imprecise_and_unproven_rules(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text(
        "rules:\n"
        "  - {name: script, label: code, phrases: [script]}\n"
        "  - {name: integral, label: math, phrases: [integral]}\n"
        "  - {name: never, label: math, phrases: [zzyzx]}\n"
    )
    texts = [
        "write a python script to rename files",
        "a bash script that backs up",
        "script for a play",
        "integral of x",
        "integral of sin x",
        "the integral of e^x",
    ]
    labels = ["code", "code", "creative", "math", "math", "math"]
    measured = {r.name: r for r in KeywordRules(load_rules(p)).calibrate(texts, labels).rules}
    assert measured["script"].hits == 3 and measured["script"].precision == pytest.approx(2 / 3)
    assert not measured["script"].enabled
    assert measured["integral"].enabled and measured["integral"].precision == 1.0
    assert not measured["never"].enabled and measured["never"].hits == 0


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ("rules: 3", "'rules' list"),
        ("rules:\n  - {name: a, label: code}\n", "exactly one of 'pattern' or 'phrases'"),
        (
            "rules:\n  - {name: a, label: code, pattern: '(unclosed'}\n",
            r"rules\[0\]\.pattern: invalid regular expression",
        ),
        ("rules:\n  - {name: a, label: code, pattern: x, colour: red}\n", r"rules\[0\]: unknown keys \['colour'\]"),
        ("rules:\n  - {name: a, label: code, pattern: x}\n  - {name: a, label: math, pattern: y}\n", "unique"),
        ("rules: [\n", "cannot read rule file"),
        (
            "rules:\n  - {name: a, label: code, pattern: x, enabled: 'false'}\n",
            r"rules\[0\]\.enabled: must be true or false",
        ),
        ("rules:\n  - {name: a, label: code, pattern: ''}\n", r"rules\[0\]\.pattern: must be a non-empty string"),
        ("rules:\n  - {name: a, label: code, pattern: '\xff'}\n", "cannot read rule file.*utf-8"),
    ],
    ids=[
        "not-list",
        "no-pattern",
        "bad-regex",
        "unknown-key",
        "duplicate",
        "bad-yaml",
        "enabled-a-string",
        "empty-pattern",
        "not-utf-8",
    ],
)
def test_bad_rule_files(tmp_path, body, match):
    p = tmp_path / "r.yaml"
    p.write_bytes(body.encode("latin-1"))  # the file holds what the case says, byte for byte
    with pytest.raises(ConfigError, match=match):
        load_rules(p)


def test_a_stored_rule_with_a_string_for_enabled_is_refused():
    stored = {"name": "a", "label": "code", "pattern": "x", "enabled": "false"}
    with pytest.raises(ConfigError, match=r"cascade\.rules\[0\]: invalid stored rule \(enabled must be true or false"):
        KeywordRules.from_list([stored])


def test_a_cascade_refuses_rules_for_labels_its_heads_do_not_have():
    """Rules run before the heads: a rule naming a foreign label would route to a pool nobody trained for."""
    from classifier.serving.cascade import Cascade
    from classifier.serving.keywords import Rule
    from tests.unit.test_cache import CountingStage2

    foreign = KeywordRules([Rule(name="calculus", label="Mathematics", pattern="derivative")])
    with pytest.raises(ValueError, match=r"keyword rules name labels .*\{'calculus': 'Mathematics'\}"):
        Cascade(CountingStage2(), foreign, 0.7)
    off = KeywordRules([Rule(name="calculus", label="Mathematics", pattern="derivative", enabled=False)])
    assert Cascade(CountingStage2(), off, 0.7).classify("derivative of x^3").label in CountingStage2.classes_
