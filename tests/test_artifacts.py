"""Atomic writes: a finished file or nothing, readable like any other file."""

import os
import stat

import pytest

from sicompress.artifacts import atomic_path, read_json, write_json


def test_written_file_has_the_usual_mode(tmp_path):
    old = os.umask(0o022)
    try:
        write_json(tmp_path / "a.json", {"x": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o644


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "b.json"
    write_json(path, {"v": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(path) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert path.read_text().strip().endswith("}") and '"v": 1' in path.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["b.json"]


def test_temporaries_of_a_killed_writer_are_cleared_by_the_next_write(tmp_path):
    import subprocess
    import sys

    from sicompress.artifacts import _HOST

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead = tmp_path / f".c.json.{_HOST}.{int(gone.stdout)}.abc123.tmp.json"
    live = tmp_path / f".c.json.{_HOST}.{os.getpid()}.def456.tmp.json"  # a writer still at it
    other_host = tmp_path / f".c.json.elsewhere.{int(gone.stdout)}.x.tmp.json"  # cannot tell
    other_file = tmp_path / f".d.json.{_HOST}.{int(gone.stdout)}.y.tmp.json"
    for p in (dead, live, other_host, other_file):
        p.write_text("half")
    write_json(tmp_path / "c.json", {"x": 1})
    assert not dead.exists()
    assert live.exists() and other_host.exists() and other_file.exists()
    assert read_json(tmp_path / "c.json") == {"x": 1}
