import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "queries.jsonl"


def run_cli(args: list[str], **env: str) -> tuple[int, str, str]:
    """`taskrouter ARGS` in this process, with TASKROUTER_CONFIG unset and `env` set: (exit status, stdout,
    stderr)."""
    from typer.testing import CliRunner

    from routing import cli

    with CliRunner().isolation(env={"TASKROUTER_CONFIG": None, **env}) as (out, err, _):
        try:
            cli.main(args)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        return code, out.getvalue().decode(), err.getvalue().decode()


def small_dataset(per_label: int = 60):
    """A balanced slice of the bundled training data (fast to embed)."""
    from classifier.data import Dataset

    rows = [json.loads(line) for line in DATA.open(encoding="utf-8")]
    picked: dict[str, list[str]] = {}
    for r in rows:
        bucket = picked.setdefault(r["label"], [])
        if len(bucket) < per_label:
            bucket.append(r["text"])
    texts = [t for lab in sorted(picked) for t in picked[lab]]
    labels = [lab for lab in sorted(picked) for _ in picked[lab]]
    return Dataset(tuple(texts), tuple(labels), str(DATA))


@pytest.fixture(scope="session")
def small_data():
    return small_dataset()


@pytest.fixture(scope="session")
def small_model_dir(tmp_path_factory, small_data):
    """A cascade trained on a small slice, saved to a temporary directory."""
    from classifier.training.train import train_cascade

    out = tmp_path_factory.mktemp("model") / "small"
    train_cascade(small_data, out=out, progress=False)
    return out


@pytest.fixture(scope="session")
def small_plain_model_dir(tmp_path_factory, small_data):
    """Like `small_model_dir`, but its MiniLM head does not read the static vectors."""
    from classifier.training.train import train_cascade

    out = tmp_path_factory.mktemp("model") / "small-plain"
    train_cascade(small_data, out=out, static_features=False, progress=False)
    return out


INTEGRATION = ROOT / "tests" / "integration"


def pytest_collection_modifyitems(items):
    """Every test under tests/integration/ (real local servers, subprocesses, end to end) is marked `integration`."""
    for item in items:
        if INTEGRATION in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.integration)
