"""Out-of-source folds: sources grouped so that every fold holds every label from two sources, and the
cascade scored on each; `train` keeps the table in the manifest and can choose C by it."""

import json
from itertools import product

import pytest
from sklearn.metrics import f1_score

from classifier import Cascade
from classifier.data import Dataset, load_dataset
from classifier.errors import InvalidParameterError
from classifier.serving.stages import HeadStage
from classifier.training.source_folds import FoldScore, group_sources, paired, score_folds
from classifier.training.train import SELECTION_SCORES, best_candidate, select_by_folds, train_cascade
from tests.conftest import ROOT


def _rows(spec: dict[tuple[str, str], int]) -> tuple[list[str], list[str]]:
    sources, labels = [], []
    for (source, label), n in spec.items():
        sources += [source] * n
        labels += [label] * n
    return sources, labels


def test_each_fold_holds_every_label_from_two_sources():
    spec = {(s, label): 30 for s, label in product("abcd", ("x", "y"))}
    folds = group_sources(*_rows(spec))
    assert len(folds) == 2 and sorted(s for f in folds for s in f) == list("abcd")
    assert all(len(f) == 2 for f in folds)


def test_a_label_from_one_source_gives_no_folds():
    spec = {("a", "x"): 50, ("b", "y"): 50, ("c", "y"): 50}  # x only in a: no fold can hold it twice
    assert group_sources(*_rows(spec)) == []


def test_a_source_with_few_rows_of_a_label_does_not_count_for_it():
    spec = {("a", "x"): 30, ("b", "x"): 5, ("a", "y"): 30, ("b", "y"): 30}
    assert group_sources(*_rows(spec)) == []
    assert group_sources(*_rows(spec), min_rows=5) == [("a", "b")]


def test_the_folds_are_the_most_even_split():
    spec = {(s, label): 30 for s, label in product("abcd", ("x", "y"))}
    spec[("a", "x")] = spec[("b", "x")] = 300  # a and b are big: each goes with a small one
    folds = group_sources(*_rows(spec))
    assert sorted(sorted(f) for f in folds) == [["a", "c"], ["b", "d"]] or sorted(sorted(f) for f in folds) == [
        ["a", "d"],
        ["b", "c"],
    ]


def test_score_folds_scores_each_group_on_its_own_rows():
    cascade = Cascade.load()
    texts = ("integrate x^2 from 0 to 3", "write a haiku about autumn", "fix this python KeyError", "capital of Peru?")
    data = Dataset(texts * 2, ("math", "creative", "code", "default") * 2, None, ("s1",) * 4 + ("s2",) * 4)
    a, b = score_folds(cascade, data, [("s1",), ("s2",)])
    assert (a.fold, a.n, b.fold, b.n) == ("A", 4, "B", 4)
    assert a.macro_f1 == b.macro_f1 and 0 <= a.escalated <= 1 and set(a.recall) == set(data.labels)


def test_score_folds_gives_each_source_its_own_accuracy():
    """A source the cascade gets wrong shows up on its own, not only as a lower fold score."""
    cascade = Cascade.load()
    right = ("integrate x^2 from 0 to 3", "write a haiku about autumn", "fix this python KeyError", "capital of Peru?")
    data = Dataset(
        right * 2,
        ("math", "creative", "code", "default") + ("default", "math", "creative", "code"),  # s2: every label wrong
        None,
        ("s1",) * 4 + ("s2",) * 4,
    )
    (fold,) = score_folds(cascade, data, [("s1", "s2")])
    assert fold.accuracy_by_source == {"s1": 1.0, "s2": 0.0}
    assert fold.to_dict()["accuracy_by_source"] == {"s1": 1.0, "s2": 0.0}


def test_balanced_accuracy_is_the_mean_recall_and_ignores_the_label_mix():
    """Macro-F1 rewards a lean toward the fold's largest label; balanced accuracy does not move with the mix."""
    from sklearn.metrics import balanced_accuracy_score

    cascade = Cascade.load()
    math, story = "integrate x^2 from 0 to 3", "write a haiku about autumn"
    truth = ("math",) * 9 + ("creative",) * 3
    data = Dataset((math,) * 9 + (story, story, math), truth, None, ("s1",) * 12)  # one creative row reads as math
    (fold,) = score_folds(cascade, data, [("s1",)])
    pred = ["math"] * 9 + ["creative", "creative", "math"]
    assert fold.balanced_accuracy == pytest.approx(balanced_accuracy_score(truth, pred)) == pytest.approx(5 / 6)
    assert fold.to_dict()["balanced_accuracy"] == fold.balanced_accuracy


def test_the_oracle_score_counts_the_escalated_rows_as_right():
    """As `evaluate --llm oracle`: an escalated row's stage-2 guess is replaced by its true label; the rest stay."""
    cascade = Cascade.load()
    texts = ("hmm", "ok so", "integrate x^2 from 0 to 3", "write a haiku about autumn", "something about numbers",
             "tell me about it", "fix this python KeyError", "capital of Peru?")  # fmt: skip
    truth = ("creative", "code", "math", "creative", "math", "creative", "code", "default")
    decisions = cascade.classify_batch(list(texts))
    escalated = [d.escalated for d in decisions]
    assert any(escalated) and not all(escalated), escalated  # the check below needs both kinds
    wrong_escalated = [d.escalated and d.label != y for d, y in zip(decisions, truth, strict=True)]
    assert any(wrong_escalated)  # else the oracle would change nothing
    (fold,) = score_folds(cascade, Dataset(texts, truth, None, ("s1",) * 8), [("s1",)])
    oracle = [y if d.escalated else d.label for d, y in zip(decisions, truth, strict=True)]
    assert fold.oracle_macro_f1 == pytest.approx(f1_score(truth, oracle, average="macro", zero_division=0))
    assert fold.oracle_macro_f1 > fold.macro_f1


def _fold(name: str, correct: list[bool]) -> FoldScore:
    return FoldScore(name, ("s",), len(correct), 0.0, 0.0, 0.0, 0.0, None, None, {}, {}, correct=tuple(correct))


def test_paired_counts_the_rows_each_model_alone_gets_right():
    a = [_fold("A", [True, True, False, False]), _fold("B", [True, True, True])]
    b = [_fold("A", [True, False, True, False]), _fold("B", [False, False, True])]
    assert paired(a, b) == {"a_only": 3, "b_only": 1, "mcnemar_p": pytest.approx(0.625)}  # 3 against 1: a coin's
    assert paired(a, a)["mcnemar_p"] == 1.0 and paired(a, a)["a_only"] == 0
    with pytest.raises(ValueError, match="different rows"):
        paired(a, b[:1])
    assert "correct" not in a[0].to_dict()  # the manifest keeps no row-by-row list


def test_the_candidate_kept_is_the_best_by_the_score_asked_for():
    """A lean toward the largest label: higher macro-F1, lower balanced accuracy. Each score keeps its own row."""
    even = {"folds_macro_f1": 0.90, "folds_balanced_accuracy": 0.92}
    leaning = {"folds_macro_f1": 0.91, "folds_balanced_accuracy": 0.90}
    assert best_candidate([even, leaning], "balanced_accuracy") is even
    assert best_candidate([even, leaning], "macro_f1") is leaning
    tie = {**even}
    assert best_candidate([even, tie], "balanced_accuracy") is even  # the first of equals


def _calibration(hard: bool = False) -> Dataset:
    """Rows from four made-up sources, each with every label of `three_labels.csv` 20 times; `hard`: and 12 rows
    each that ask two labels' questions at once, on which candidates differ (on the easy rows all score 1.0)."""
    topics = {
        "legal": "Can my {} sue me over the {} clause in our contract?",
        "sql": "How do I write a SQL query joining the {} table with the {} table?",
        "chitchat": "Hey, how was your {} with the {} last weekend?",
    }
    words = ["landlord", "employer", "neighbour", "tenant", "orders", "users", "trip", "dinner", "team", "family"]
    texts, labels, sources = [], [], []
    for k, source in enumerate(("s1", "s2", "s3", "s4")):
        for label, template in topics.items():
            for i in range(20):
                texts.append(template.format(words[(i + k) % 10], words[(3 * i + k + 1) % 10]) + f" ({source} {i})")
                labels.append(label)
                sources.append(source)
    short = {"legal": "Can my {} sue me?", "sql": "SQL join of {} and {}?", "chitchat": "How was your {}?"}
    for k, source in enumerate(("s1", "s2", "s3", "s4") if hard else ()):
        for i in range(12):
            first, second = list(short)[i % 3], list(short)[(i + 1) % 3]
            both = [short[t].format(words[(i + j) % 6], words[(i + j + k) % 6]) for j, t in ((0, first), (2, second))]
            texts.append(" ".join(both) + f" [{source}{i}]")
            labels.append(second if i % 2 else first)
            sources.append(source)
    return Dataset(tuple(texts), tuple(labels), None, tuple(sources))


@pytest.fixture(scope="module")
def three_labels():
    return load_dataset(ROOT / "tests/data/three_labels.csv")


def test_train_scores_the_folds_and_keeps_them_in_the_manifest(three_labels, tmp_path):
    _, report = train_cascade(three_labels, out=tmp_path / "m", calibration=_calibration(), progress=False)
    assert report.folds is not None and len(report.folds) == 2
    assert sorted(s for f in report.folds for s in f.sources) == ["s1", "s2", "s3", "s4"]
    kept = json.loads((tmp_path / "m" / "manifest.json").read_text())["training"]["calibration"]
    assert [f["macro_f1"] for f in kept["folds"]] == [f.macro_f1 for f in report.folds]
    assert sorted(s for f in kept["folds"] for s in f["accuracy_by_source"]) == ["s1", "s2", "s3", "s4"]
    assert kept["rows_per_source_and_label"]["s1"] == {"legal": 20, "sql": 20, "chitchat": 20}


def test_select_by_folds_keeps_the_best_candidate(three_labels, tmp_path):
    _, report, table = select_by_folds(
        three_labels, calibration=_calibration(), candidates=[{"C": 0.01}, {"C": 4.0}], out=tmp_path / "m",
        progress=False,
    )  # fmt: skip
    best = max(table, key=lambda row: row["folds_balanced_accuracy"])  # the default score
    assert [row["chosen"] for row in table] == [row is best for row in table]
    assert {row["chosen_by"] for row in table} == {"balanced_accuracy"}
    assert report.folds_balanced_accuracy == pytest.approx(best["folds_balanced_accuracy"])
    assert report.folds_macro_f1 == pytest.approx(best["folds_macro_f1"])
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert manifest["params"]["C"] == best["params"]["C"] and manifest["training"]["selection"] == table


@pytest.mark.parametrize("score", SELECTION_SCORES)
def test_select_by_folds_ranks_by_the_score_given(three_labels, score):
    _, report, table = select_by_folds(
        three_labels, calibration=_calibration(hard=True), candidates=[{"C": 1e-3}, {"C": 1.0}], score=score,
        progress=False,
    )  # fmt: skip
    first, second = (row[f"folds_{score}"] for row in table)
    assert second > first  # not a tie: the first of equals would be kept
    assert [row["chosen"] for row in table] == [False, True]
    assert getattr(report, f"folds_{score}") == pytest.approx(second)
    against = [row["against_kept"] for row in table]
    assert against[1] == {"kept_only": 0, "this_only": 0, "mcnemar_p": 1.0}  # the kept one against itself
    assert against[0]["kept_only"] + against[0]["this_only"] > 0 and 0 < against[0]["mcnemar_p"] <= 1
    assert sum(len(f.correct) for f in report.folds) == sum(f.n for f in report.folds)  # every fold row, once


def test_select_by_folds_refuses_an_unknown_score(three_labels):
    with pytest.raises(InvalidParameterError, match="score"):
        select_by_folds(three_labels, calibration=_calibration(), candidates=[{"C": 1.0}], score="accuracy")


def test_select_by_folds_needs_sources_that_group(three_labels):
    flat = Dataset(three_labels.texts, three_labels.labels, None)
    with pytest.raises(InvalidParameterError, match="calibration"):
        select_by_folds(three_labels, calibration=flat, candidates=[{"C": 1.0}])


def test_the_cli_chooses_c_only_with_calibration_rows(tmp_path):
    from typer.testing import CliRunner

    from routing.cli import app

    data = str(ROOT / "tests/data/three_labels.csv")
    result = CliRunner().invoke(app, ["train", "--data", data, "--out", str(tmp_path / "m"), "--select-c", "1"])
    assert result.exit_code == 1 and "need --calibration-data" in result.output
    result = CliRunner().invoke(app, ["train", "--data", data, "--out", str(tmp_path / "m"),
                                      "--select-lexical-weight", "2"])  # fmt: skip
    assert result.exit_code == 1 and "need --calibration-data" in result.output


def _calibration_file(tmp_path, hard: bool = False):
    """`_calibration(hard)`'s rows as a JSONL file with their sources, for the command line."""
    rows = _calibration(hard)
    path = tmp_path / "calibration.jsonl"
    path.write_text(
        "".join(
            json.dumps({"text": t, "label": y, "source": s}) + "\n"
            for t, y, s in zip(rows.texts, rows.labels, rows.sources or (), strict=True)
        ),
        encoding="utf-8",
    )
    return path


def test_the_cli_prints_the_fold_table_with_each_source(tmp_path):
    from typer.testing import CliRunner

    from routing.cli import app

    calibration = _calibration_file(tmp_path)
    data = str(ROOT / "tests/data/three_labels.csv")
    args = ["train", "--data", data, "--out", str(tmp_path / "m"), "--calibration-data", str(calibration)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if x.strip().startswith("accuracy by source:"))
    named = [part.split()[0] for part in line.split(":", 1)[1].split(",")]
    assert sorted(named) == ["s1", "s2", "s3", "s4"]


def test_the_cli_chooses_the_n_gram_weight_on_the_folds(tmp_path):
    """Part of the feature set: the weight of the word n-grams against the embeddings, chosen like C."""
    from typer.testing import CliRunner

    from routing.cli import app

    calibration = _calibration_file(tmp_path)
    data = str(ROOT / "tests/data/three_labels.csv")
    args = ["train", "--data", data, "--out", str(tmp_path / "m"), "--calibration-data", str(calibration),
            "--c", "2", "--select-lexical-weight", "0", "--select-lexical-weight", "3"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "the n-gram weight chosen on the out-of-source folds" in result.output
    selection = json.loads((tmp_path / "m" / "manifest.json").read_text())["training"]["selection"]
    assert [row["params"] for row in selection] == [{"lexical_weight": 0.0}, {"lexical_weight": 3.0}]
    kept = next(row for row in selection if row["chosen"])
    assert kept["folds_balanced_accuracy"] == max(row["folds_balanced_accuracy"] for row in selection)
    assert "by mean balanced-accuracy" in result.output
    head = Cascade.load(tmp_path / "m").classifier
    assert head.lexical_weight == kept["params"]["lexical_weight"]


def test_the_cli_ranks_by_macro_f1_when_asked(tmp_path):
    from typer.testing import CliRunner

    from routing.cli import app

    calibration = _calibration_file(tmp_path, hard=True)
    data = str(ROOT / "tests/data/three_labels.csv")
    args = ["train", "--data", data, "--out", str(tmp_path / "m"), "--calibration-data", str(calibration),
            "--select-c", "0.001", "--select-c", "1", "--select-by", "macro-f1"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    selection = json.loads((tmp_path / "m" / "manifest.json").read_text())["training"]["selection"]
    kept = next(row for row in selection if row["chosen"])
    assert kept is selection[1] and kept["folds_macro_f1"] > selection[0]["folds_macro_f1"]  # not the first of equals
    assert kept["chosen_by"] == "macro_f1" and "by mean macro-f1" in result.output
    for row in selection:  # each candidate's line shows both means, each followed by its folds
        line = next(x for x in result.output.splitlines() if x.strip().startswith(f"C={row['params']['C']:<6g}"))
        assert f"{row['folds_balanced_accuracy']:.4f} (A" in line and f"{row['folds_macro_f1']:.4f} (A" in line


@pytest.mark.parametrize(
    ("extra", "code", "message"),
    [
        (["--select-by", "macro-f1"], 1, "--select-by ranks the candidates"),
        (["--select-c", "1", "--select-by", "accuracy"], 2, "--select-by"),
    ],
)
def test_the_cli_refuses_a_select_by_it_cannot_use(tmp_path, extra, code, message):
    from typer.testing import CliRunner

    from routing.cli import app

    calibration = _calibration_file(tmp_path)
    data = str(ROOT / "tests/data/three_labels.csv")
    args = ["train", "--data", data, "--out", str(tmp_path / "m"), "--calibration-data", str(calibration), *extra]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == code and message in result.output
    assert not (tmp_path / "m").exists()


def _sources(data: Dataset, keep) -> Dataset:
    rows = [i for i, s in enumerate(data.sources or ()) if keep(s)]
    return Dataset(tuple(data.texts[i] for i in rows), tuple(data.labels[i] for i in rows), None,
                   tuple((data.sources or ())[i] for i in rows))  # fmt: skip


def _thresholds(cascade: Cascade) -> dict[str, float]:
    return {s.name: s.threshold for s in cascade.stages if isinstance(s, HeadStage)}


@pytest.mark.parametrize("target", [{}, {"max_error": 0.05}], ids=["escalation-budget", "error-target"])
def test_each_fold_is_scored_with_thresholds_read_on_the_other_folds_only(three_labels, target):
    """A fold's score must say what the thresholds do on sources they were not read on: the same as training with
    the other folds' rows as calibration data and scoring this fold with that cascade. With an error target, the
    MiniLM threshold is read on the training rows the fold's static threshold passes on."""
    clean = _calibration()
    noisy = {"s3", "s4"}  # in these, 6 rows of each label carry the next label: thresholds read there are stricter
    every = sorted(set(clean.labels))
    labels = tuple(
        every[(every.index(y) + 1) % len(every)] if s in noisy and int(t.rsplit(" ", 1)[1][:-1]) < 6 else y
        for t, y, s in zip(clean.texts, clean.labels, clean.sources or (), strict=True)
    )
    calibration = Dataset(clean.texts, labels, None, clean.sources)
    cascade, report = train_cascade(three_labels, calibration=calibration, progress=False, **target)
    assert report.folds and len(report.folds) == 2
    for fold in report.folds:
        alone, _ = train_cascade(
            three_labels,
            calibration=_sources(calibration, lambda s, f=fold: s not in f.sources),
            progress=False,
            **target,
        )
        (again,) = score_folds(alone, _sources(calibration, lambda s, f=fold: s in f.sources), [fold.sources])
        read_elsewhere = _thresholds(alone)
        assert (fold.static_threshold, fold.escalation_threshold) == (read_elsewhere["static"],
                                                                      read_elsewhere["embedding"])  # fmt: skip
        assert (fold.macro_f1, fold.escalated, fold.static_coverage) == (
            again.macro_f1, again.escalated, again.static_coverage
        )  # fmt: skip
    # the shipped thresholds are read on every calibration row, so the folds' differ from them
    shipped = _thresholds(cascade)
    assert all((f.static_threshold, f.escalation_threshold) != (shipped["static"], shipped["embedding"])
               for f in report.folds)  # fmt: skip


def test_one_fold_is_scored_with_the_thresholds_read_on_its_own_rows(three_labels):
    """Two sources make one fold: no other rows to read thresholds on, so it keeps the model's own (and says so)."""
    two = _sources(_calibration(), lambda s: s in {"s1", "s2"})
    cascade, report = train_cascade(three_labels, calibration=two, progress=False)
    (fold,) = report.folds or [None]
    assert fold is not None and sorted(fold.sources) == ["s1", "s2"]
    assert (fold.static_threshold, fold.escalation_threshold) == (cascade.static_threshold, cascade.threshold)
    assert fold.static_coverage == score_folds(cascade, two, [fold.sources])[0].static_coverage


def test_the_manifest_keeps_the_curve_each_threshold_was_read_from(three_labels, tmp_path):
    """Read on calibration rows, the MiniLM threshold comes with their curve: at each threshold, the share of the
    calibration rows reaching MiniLM that the served cascade would escalate."""
    calibration = _calibration()
    cascade, _ = train_cascade(three_labels, calibration=calibration, out=tmp_path / "m", progress=False)
    heads = {h["stage"]: h for h in json.loads((tmp_path / "m" / "manifest.json").read_text())["heads"]}
    reached = [r.confidence for d in cascade.classify_batch(list(calibration.texts))
               if (r := d.stage_result("embedding")) is not None]  # fmt: skip
    assert reached
    for point in heads["embedding"]["curve"][::10]:
        below = sum(c < point["threshold"] for c in reached) / len(reached)
        assert point["escalation_rate"] == pytest.approx(below, abs=1e-9), point
