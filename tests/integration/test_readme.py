"""The README's ```python and ```bash blocks run as written, in order, offline (the demo config's mock replies).

They run in a scratch folder that links the repository's top-level entries, so what they write stays there. A
block that cannot run offline says so with `<!-- readme-test: skip: why -->` on the line before its fence. Running
the blocks takes a minute or two (the CLI example trains a model), so they are marked `integration`.
"""

import os
import re
import subprocess
import sys
from dataclasses import dataclass

import pytest

from tests.conftest import ROOT

README = ROOT / "README.md"
SKIP = re.compile(r"<!--\s*readme-test:\s*skip(?::\s*(?P<why>.*?))?\s*-->")
FENCE = re.compile(r"^```(?P<lang>[\w-]*)\s*$")
RUN = ("python", "bash")


@dataclass(frozen=True)
class Block:
    lang: str
    line: int
    code: str
    skip: str | None  # the reason given, or None when the block runs


def readme_blocks(text: str) -> list[Block]:
    """Every fenced block in `text`, with the skip reason of a marker on the last non-blank line before it."""
    blocks, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        before = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        marker = SKIP.search(before)
        blocks.append(
            Block(
                m["lang"],
                i + 1,
                "\n".join(lines[i + 1 : end]) + "\n",
                (marker["why"] or "marked skip") if marker else None,
            )
        )
        i = end + 1
    return blocks


BLOCKS = [b for b in readme_blocks(README.read_text(encoding="utf-8")) if b.lang in RUN]


def test_the_parser_sees_markers_and_fences():
    text = (
        "x\n```bash\necho 1\n```\n<!-- readme-test: skip: no network -->\n\n```python\nprint(2)\n```\n"
        "```yaml\na: 1\n```\n"
    )
    assert readme_blocks(text) == [
        Block("bash", 2, "echo 1\n", None),
        Block("python", 7, "print(2)\n", "no network"),
        Block("yaml", 10, "a: 1\n", None),
    ]


def test_most_readme_examples_run():
    """The skipped set stays small: each skip names its reason, and runnable blocks outnumber skipped ones."""
    skipped = [b for b in BLOCKS if b.skip]
    assert all(b.skip.strip() and b.skip != "marked skip" for b in skipped), skipped
    assert len(BLOCKS) - len(skipped) >= 2 and len(skipped) <= 4, [(b.line, b.skip) for b in skipped]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A scratch folder linking the repository's top-level entries, and an environment whose `taskrouter` and
    `python` are this interpreter running this checkout."""
    ws = tmp_path_factory.mktemp("readme")
    for entry in ROOT.iterdir():
        if not entry.name.startswith("."):
            (ws / entry.name).symlink_to(entry)
    bin_dir = tmp_path_factory.mktemp("bin")
    for name, target in (("taskrouter", f'"{sys.executable}" -m routing.cli'), ("python", f'"{sys.executable}"')):
        (bin_dir / name).write_text(f'#!/bin/sh\nexec {target} "$@"\n')
        (bin_dir / name).chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "HF_HUB_OFFLINE": "1",
    }
    return ws, env


@pytest.mark.integration
@pytest.mark.parametrize("block", BLOCKS, ids=[f"{b.lang}-line{b.line}" for b in BLOCKS])
def test_readme_block_runs(block, workspace):
    if block.skip:
        pytest.skip(f"README line {block.line}: {block.skip}")
    ws, env = workspace
    cmd = (
        [sys.executable, "-c", block.code] if block.lang == "python" else ["bash", "-euo", "pipefail", "-c", block.code]
    )
    r = subprocess.run(cmd, cwd=ws, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"README line {block.line} exit {r.returncode}:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
