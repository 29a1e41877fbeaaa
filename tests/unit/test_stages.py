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


def linear_head(*, lexical_weight=0.0, examples=None, n_features=2**6):
    """A served head over the `Counting` embedder (2 columns), with n-gram columns only where its weight is not 0
    (as `features.combine` fits it and `load_model` checks it)."""
    from classifier.serving.head import HeadExport, LinearHead

    texts = ["alpha beta", "gamma", "delta epsilon"]
    idf = LexicalFeatures(n_features=n_features).fit(texts).idf_
    width = 2 + (n_features if lexical_weight else 0)
    coef = np.linspace(-1, 1, 3 * width).reshape(3, width)
    export = HeadExport(
        ("a", "b", "c"), coef, np.zeros(3), 1.0, lexical_weight, idf, (2, 3), ("counting",), examples=examples
    )
    return LinearHead.from_arrays(export, [Counting()])


@pytest.mark.parametrize("lexical_weight", [0.0, 1.5], ids=["no-ngrams", "ngrams"])
def test_embeddings_made_beforehand_fit_a_head_without_ngram_columns(lexical_weight):
    """Before: a head with n-gram weight 0 expected coef's width less the n-gram count (negative) of embedding
    columns, so predict_proba(embeddings=...) refused every array."""
    head = linear_head(lexical_weight=lexical_weight)
    texts = ["integrate x squared", "write a poem"]
    made = head.predict_proba(texts, embeddings=head.embed(texts))
    assert np.array_equal(made, head.predict_proba(texts))
    with pytest.raises(ValueError, match="this head's 2 embedding columns"):
        head.predict_proba(texts, embeddings=np.zeros((2, 3), dtype=np.float32))


def _load_context(heads, *, llm=None, fallback_label=None):
    from types import SimpleNamespace

    from classifier.serving.stages import LoadContext

    trained_scope = SimpleNamespace(model_dump=lambda: {"k": 2, "threshold": 0.1, "target": 0.05})
    model = SimpleNamespace(
        heads=heads, directory="/models/m", manifest=SimpleNamespace(cascade=SimpleNamespace(scope=trained_scope))
    )
    return LoadContext(model, llm=llm, fallback_label=fallback_label)  # type: ignore[arg-type]


class Abstains:
    """A stage 3 that never names a label."""

    def classify(self, text, examples=()):
        return StageResult(LLM, None, None, 0.0)


@pytest.mark.parametrize("stage", ["scope", "llm"])
def test_a_stage_over_a_head_saved_without_examples_is_a_model_file_error(stage):
    """Before: the scope stage raised a bare RuntimeError while loading, and stage 3 loaded and then raised it out
    of classify_batch at the first escalation."""
    from classifier.errors import ModelFileError
    from classifier.serving.head import Examples
    from classifier.serving.stages import FewShotLLMStage, ScopeStage, StageManifest

    examples = Examples(["alpha", "gamma"], ["a", "b"], np.eye(2, dtype=np.float16))
    heads = {EMBEDDING: linear_head(examples=examples), "static": linear_head()}
    kind = ScopeStage if stage == "scope" else FewShotLLMStage
    context = _load_context(heads, llm=Abstains() if stage == "llm" else None, fallback_label="other")
    ok = kind.from_manifest(StageManifest(stage, kind.kind, {"head": EMBEDDING}), context)
    assert ok is not None and ok.head is heads[EMBEDDING]
    entry = StageManifest(stage, kind.kind, {"head": "static"})
    with pytest.raises(ModelFileError, match=rf"cascade\.stages\[{stage}\]\.config\.head: the 'static' head was saved "
                       rf"without the training examples the {stage} stage reads"):  # fmt: skip
        kind.from_manifest(entry, context)


class Halves:
    """A head that gives every text the probabilities (0.6, 0.4) over labels a and b."""

    classes_ = np.array(["a", "b"])
    progress = None

    def proba(self, ctx):
        return np.tile([0.6, 0.4], (len(ctx.texts), 1))


def test_from_stages_re_weights_the_heads_to_its_priors():
    """Before: `from_stages(priors=...)` stamped the priors on every decision but neither checked them nor
    re-weighted the heads, so the decisions claimed a mix they were not made under."""
    from classifier.errors import InvalidParameterError
    from classifier.serving.stages import HeadStage

    manifest = {"training": {"label_counts": {"a": 30, "b": 10}}}
    stages = [HeadStage(EMBEDDING, Halves(), 0.5)]
    plain = Cascade.from_stages(stages, manifest=manifest, cache_size=0)
    priors = {"a": 1, "b": 3}  # 0.25 / 0.75 of traffic, trained on 0.75 / 0.25: b's weight is 9 times a's
    made = Cascade.from_stages(stages, manifest=manifest, priors=priors, cache_size=0)
    assert plain.classify("x").label == "a"
    decision = made.classify("x")
    assert decision.label == "b" and decision.confidence == pytest.approx(0.4 * 3 / (0.6 / 3 + 0.4 * 3))
    assert dict(decision.priors) == {"a": 0.25, "b": 0.75}
    assert np.allclose(made.stage(EMBEDDING).prior_weights, [1 / 3, 3])
    # the same as `with_priors`, and idempotent on stages already re-weighted (to these priors or to others)
    for given in (plain.with_priors(priors).stages, plain.with_priors({"a": 5, "b": 1}).stages):
        again = Cascade.from_stages(given, manifest=manifest, priors=priors, cache_size=0)
        assert np.array_equal(again.stage(EMBEDDING).prior_weights, made.stage(EMBEDDING).prior_weights)
        assert again.priors == made.priors == plain.with_priors(priors).priors
    with pytest.raises(InvalidParameterError, match="unknown: \\['bogus'\\]"):
        Cascade.from_stages(stages, priors={"a": 1, "b": 1, "bogus": 1})
    with pytest.raises(InvalidParameterError, match="'budget' parameter of Cascade.from_stages"):
        Cascade.from_stages(stages, budget=0.1)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("texts", "match"),
    [
        (None, "must be a sequence of query strings"),
        (5, "must be a sequence of query strings"),
        ("one string", "not one string \\(use classify\\(\\) for one query\\)"),
        (b"bytes", "not one string"),
        ({"write a poem": 1}, "not a mapping or a set"),
        ({"write a poem"}, "not a mapping or a set"),
        (frozenset({"a"}).union({"b"}), "not a mapping or a set"),
    ],
    ids=["none", "int", "str", "bytes", "dict", "set", "frozenset"],
)
def test_what_is_not_a_batch_of_queries_is_refused_by_name(texts, match):
    """Before: None and 5 raised a bare TypeError ('object is not iterable'), a dict was classified by its keys."""
    from classifier.errors import InvalidParameterError

    cascade = Cascade.from_stages([Guess()], cache_size=0)
    with pytest.raises(InvalidParameterError, match=f"'texts' parameter of Cascade.classify_batch .*{match}"):
        cascade.classify_batch(texts)
    with pytest.raises(InvalidParameterError, match=f"'texts' parameter of Cascade.head_proba .*{match}"):
        Cascade.from_stages([HeadStageOf(Halves())], cache_size=0).head_proba(EMBEDDING, texts)
    assert [d.label for d in cascade.classify_batch(t for t in ["an apple", "box"])] == ["a", "b"]  # a generator


def HeadStageOf(head):  # noqa: N802 - reads as the class it makes
    from classifier.serving.stages import HeadStage

    return HeadStage(EMBEDDING, head, 0.5)


@pytest.mark.parametrize("window", [5, "ab", 1.5, (1500,), [1, 2, 3]], ids=["int", "str", "float", "one", "three"])
def test_a_window_that_is_not_two_counts_is_refused_by_name(window):
    """Before: window=5 raised TypeError("object of type 'int' has no len()")."""
    from classifier.errors import InvalidParameterError

    with pytest.raises(InvalidParameterError, match="'window' parameter of Cascade must be None or \\(head, tail\\)"):
        Cascade.from_stages([Guess()], window=window)
