"""The stage protocol without a model: any `Stage` plugs into the cascade, and a batch's context makes each
feature once."""

import numpy as np
import pytest

from classifier.results import EMBEDDING, LLM, STAGES, StageResult
from classifier.serving.cascade import Cascade
from classifier.serving.features import LexicalFeatures
from classifier.serving.head import BatchContext
from classifier.serving.stages import REGISTRY, Stage


class Guess(Stage):
    """Names 'a' for texts with 'a' in them (sure), else 'b' (unsure)."""

    name, guesses, labels = EMBEDDING, True, ["a", "b"]

    def __init__(self, threshold=0.9):
        self.threshold = threshold

    def classify_batch(self, texts, ctx):
        return [StageResult(self.name, "a" if "a" in t else "b", 0.95 if "a" in t else 0.5, 0.0) for t in texts]


class Expert(Stage):
    """A later stage that answers 'a' for texts with 'x' and abstains on the rest; records what it saw."""

    name = LLM

    def __init__(self):
        self.seen = []

    def classify_batch(self, texts, ctx):
        self.seen += texts
        return [StageResult(self.name, "a" if "x" in t else None, None, 0.0) for t in texts]


def test_the_built_in_stages_register_their_kinds():
    from classifier.model_files import CascadeSpec, HeadSpec, built_in_stages

    assert {"rules", "scope", "head", "few_shot_llm"} <= set(REGISTRY)
    assert all(issubclass(c, Stage) for c in REGISTRY.values())
    heads = [
        HeadSpec(
            stage=name,
            file=f"{name}.npz",
            embedders=["e"],
            lexical_weight=0,
            calibration={"temperature": 1},
            threshold=0.5,
        )  # fmt: skip
        for name in ("embedding", "static")
    ]
    entries = built_in_stages(CascadeSpec(rules=[{"name": "r"}]), heads)
    assert tuple(e.name for e in entries) == STAGES and all(e.kind in REGISTRY for e in entries)


def test_a_kind_is_taken_once():
    with pytest.raises(TypeError, match="stage kind 'head' is taken by classifier.serving.stages.HeadStage"):

        class Impostor(Stage):
            kind = "head"

            def classify_batch(self, texts, ctx):
                return []


def test_a_class_of_the_same_name_elsewhere_cannot_take_a_kind():
    """The clash check compared class names only: a `HeadStage` of any other module replaced the built-in one."""
    with pytest.raises(TypeError, match="stage kind 'head' is taken by classifier.serving.stages.HeadStage"):

        class HeadStage(Stage):
            kind = "head"

            def classify_batch(self, texts, ctx):
                return []

    assert REGISTRY["head"].__module__ == "classifier.serving.stages"


def test_a_cascade_is_a_loop_over_its_stages():
    expert = Expert()
    cascade = Cascade.from_stages([Guess(), expert], cache_size=0)
    sure, passed_on, unanswered = cascade.classify_batch(["an apple", "box", "boo"])
    assert (sure.stage, sure.label, sure.escalated) == (EMBEDDING, "a", False)
    assert (passed_on.stage, passed_on.label, passed_on.escalated) == (LLM, "a", True)
    assert (unanswered.stage, unanswered.label, unanswered.escalated) == (EMBEDDING, "b", True)
    assert [s.stage for s in unanswered.trail] == [EMBEDDING, LLM] and expert.seen == ["box", "boo"]


@pytest.mark.parametrize(
    ("stages", "match"),
    [
        ([Expert()], "a stage that always names a label"),
        ([Guess(), Guess()], "distinct names"),
        ([Guess(threshold=1.5)], "threshold must be in"),
    ],
    ids=["no-head", "twice", "threshold"],
)
def test_bad_stage_lists_are_refused(stages, match):
    with pytest.raises(ValueError, match=match):
        Cascade.from_stages(stages)


class Counting:
    id, dim, backend = "counting", 2, "test"

    def __init__(self):
        self.calls = 0

    def encode(self, texts, *, progress=None):
        self.calls += 1
        return np.array([[len(t), 1.0] for t in texts], dtype=np.float32)


def test_the_context_makes_each_feature_once_and_hands_it_on():
    texts = ["alpha beta", "gamma", "delta epsilon"]
    embedder, lexical = Counting(), LexicalFeatures(n_features=2**8).fit(texts)
    ctx = BatchContext(texts)
    vectors, rows = ctx.vectors(embedder), ctx.lexical(lexical)
    assert ctx.vectors(embedder) is vectors and ctx.lexical(LexicalFeatures(n_features=2**8).fit(texts)) is rows
    rest = ctx.take([2, 0])
    assert rest.texts == ["delta epsilon", "alpha beta"] and np.array_equal(rest.vectors(embedder), vectors[[2, 0]])
    assert np.array_equal(rest.lexical(lexical).to_scipy().toarray(), rows.to_scipy().toarray()[[2, 0]])
    assert embedder.calls == 1
    other = LexicalFeatures(n_features=2**8).fit(["something else entirely"])  # other IDF weights: other rows
    assert ctx.lexical(other) is not rows
