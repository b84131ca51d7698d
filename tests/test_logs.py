"""Job logs: timestamped lines, the error named, and a rerun appended below a separator."""

import pytest

from sicompress.logs import step_log


def test_log_lines_error_and_rerun(tmp_path, capsys):
    path = tmp_path / "logs" / "train.log"
    with step_log(path) as log:
        log("epoch 1/3")
    with pytest.raises(ValueError):
        with step_log(path) as log:
            log("resume: continuing after epoch 1")
            raise ValueError("train.lr must be > 0")
    text = path.read_text()
    lines = text.splitlines()
    assert lines[0].endswith("] epoch 1/3") and lines[0].startswith("[")
    assert lines[1].startswith("----- run again") and "earlier run" in lines[1]
    assert lines[2].endswith("] resume: continuing after epoch 1")
    assert "ERROR: ValueError: train.lr must be > 0" in lines[3]
    assert "Traceback" in text  # the traceback in the file
    err = capsys.readouterr().err
    assert "epoch 1/3" in err and "ERROR: ValueError" in err and "Traceback" not in err
