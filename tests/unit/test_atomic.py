"""classifier.atomic.replaced: a file is written whole or not at all."""

import os
import stat

import pytest

from classifier.atomic import replaced


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_clean_block_replaces_the_file(tmp_path):
    target = tmp_path / "out.jsonl"
    target.write_text("old\n")
    with replaced(target) as f:
        f.write("new ✓\n")
    assert target.read_text(encoding="utf-8") == "new ✓\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]


def test_an_error_part_way_leaves_the_file_and_no_temporary_one(tmp_path):
    target = tmp_path / "out.jsonl"
    target.write_text("old\n")
    with pytest.raises(RuntimeError), replaced(target) as f:
        f.write("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]


def test_the_new_file_is_private_unless_told_otherwise(tmp_path):
    with replaced(tmp_path / "private") as f:
        f.write("x")
    with replaced(tmp_path / "shared", permissions=0o644) as f:
        f.write("x")
    original = tmp_path / "training.csv"
    original.write_text("text,label\n")
    original.chmod(0o664)
    with replaced(original, mode_of=original) as f:
        f.write("text,label\nhi,default\n")
    assert (_mode(tmp_path / "private"), _mode(tmp_path / "shared"), _mode(original)) == (0o600, 0o644, 0o664)
