"""The machine-wide file cache: a reader never takes a build in progress for a broken file."""

import linecache
import sys
import threading
import time

import pytest

from classifier.errors import ModelFileError
from classifier.serving.filecache import get_or_build, locked, make_file


def _write(text):
    return lambda tmp: tmp.write_text(text)


def _waits_for_the_lock(thread):
    """Whether `thread` is in `locked`'s exclusive flock call (a C call: its frame stays on that line)."""
    frame = sys._current_frames().get(thread.ident)
    return (
        frame is not None
        and frame.f_code.co_name == "locked"
        and "LOCK_EX" in linecache.getline(frame.f_code.co_filename, frame.f_lineno)
    )


def test_a_reader_waits_for_a_build_between_its_two_renames(tmp_path):
    """A build renames the file, then its record; a reader in between must not report a mismatch."""
    path = tmp_path / "table.bin"
    make_file(path, _write("old"), "table")
    results = []

    def read():
        try:
            results.append(get_or_build(path, "table", _write("x"), dict, allow_build=False, hint="build it"))
        except ModelFileError as exc:
            results.append(exc)

    with locked(tmp_path / ".lock"):  # another process's build: the new file is in place, its record not yet
        record = (tmp_path / "table.bin.json").read_bytes()
        make_file(path, _write("new"), "table")
        new_record = (tmp_path / "table.bin.json").read_bytes()
        (tmp_path / "table.bin.json").write_bytes(record)
        reader = threading.Thread(target=read)
        reader.start()
        deadline = time.monotonic() + 30
        while not (results or _waits_for_the_lock(reader)) and time.monotonic() < deadline:
            time.sleep(0.005)  # a bounded poll: until the reader blocks in flock (or, wrongly, answers)
        assert not results and _waits_for_the_lock(reader)  # it waits for the lock instead of failing
        (tmp_path / "table.bin.json").write_bytes(new_record)
    reader.join(5)
    assert results == [b"new"]


def test_a_bad_file_without_a_build_says_how_to_build_it(tmp_path):
    path = tmp_path / "table.bin"
    make_file(path, _write("data"), "table")
    path.write_text("tampered")
    with pytest.raises(ModelFileError, match="build it with `taskrouter assets build`"):
        get_or_build(path, "table", _write("x"), dict, allow_build=False, hint="taskrouter assets build")
