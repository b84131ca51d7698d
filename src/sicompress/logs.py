"""Progress lines a person can follow: one timestamped line per event, to the rule's log file
and to the terminal, and the error named in the log when a step fails.

A job run again (after a kill, a failure or a config change) appends to its log below a
separator line, so the log of an interrupted training and of its resumption read as one."""

from __future__ import annotations

import contextlib
import sys
import time
import traceback
from pathlib import Path
from typing import Callable, Iterator


SEPARATOR = "-----"


@contextlib.contextmanager
def step_log(path: str | Path | None, threads: int | None = None) -> Iterator[Callable[[str], None]]:
    """Yield `log(msg)`; on an exception, log its message (and the traceback, in the file)."""
    if threads:
        import torch

        torch.set_num_threads(max(1, int(threads)))
    fh = None
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        earlier = Path(path).exists() and Path(path).stat().st_size > 0
        fh = open(path, "a")
        if earlier:
            fh.write(f"{SEPARATOR} run again {time.strftime('%Y-%m-%d %H:%M:%S')}; the lines "
                     "above are from an earlier run of this job -----\n")

    def log(msg: str) -> None:
        line = f"[{time.strftime('%Y-%m-%d %H:%M:%S')}] {msg}"
        print(line, file=sys.stderr, flush=True)
        if fh:
            fh.write(line + "\n")
            fh.flush()

    try:
        yield log
    except Exception as e:
        log(f"ERROR: {type(e).__name__}: {e}")
        if fh:
            fh.write(traceback.format_exc())
        raise
    finally:
        if fh:
            fh.close()
