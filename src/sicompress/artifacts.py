"""Writing outputs safely, and the provenance every artefact carries.

A later rule must never mistake a half-written file for a finished one, so every output is
written to a temporary file in the same folder and renamed into place (atomic on POSIX).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Iterator

from . import __version__


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    The temporary file is hidden and named after its writer (host and process id). A process
    killed outright (SIGKILL, a pre-empted job) cannot clean up after itself, so every write
    first removes the temporary files of `path` whose writer on this host is gone."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{_HOST}.{os.getpid()}.",
                               suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        # mkstemp makes the file private (0600); give it the mode a plain open() would, so
        # that colleagues sharing a results folder can read it
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "host"


def _remove_stale_temporaries(path: Path) -> None:
    pattern = re.compile(rf"\.{re.escape(path.name)}\.([A-Za-z0-9-]+)\.(\d+)\.[^.]*"
                         rf"\.tmp{re.escape(path.suffix)}")
    for old in path.parent.glob(f".{path.name}.*.tmp{path.suffix}"):
        m = pattern.fullmatch(old.name)
        if m and m.group(1) == _HOST and not _alive(int(m.group(2))):
            with contextlib.suppress(FileNotFoundError):
                old.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        pass
    return True


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: str | Path, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=_jsonable) + "\n")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def read_state(path: str | Path, identity: dict, log, *, what: str,
               other: str = "other data or options") -> dict | None:
    """The partial state of an interrupted job in the JSON file `path`, if it was written for
    the same `identity` (every key equal); else None, and a line saying why (`what` names
    the work that then starts over, `other` what a state of another identity is of). No
    file: None, silently."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        state = read_json(path)
    except (OSError, ValueError) as e:
        log(f"resume: cannot read {path} ({type(e).__name__}: {e}); {what} from the start")
        return None
    if not isinstance(state, dict) or any(state.get(k) != v for k, v in identity.items()):
        log(f"resume: {path} is of {other}; {what} from the start")
        return None
    return state


def _jsonable(o: Any) -> Any:
    if hasattr(o, "tolist"):  # numpy / torch scalars and arrays
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


def save_torch(path: str | Path, obj: Any) -> None:
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def fingerprint(*tensors) -> list[float]:
    """Shape and float64 sums of some tensors: tells two data sets, two initial models or two
    sets of activations apart well enough to never resume a state written for another."""
    import torch

    out: list[float] = []
    for t in tensors:
        t = torch.as_tensor(t)
        if t.numel() == 0:
            out += [0.0, 0.0, 0.0]
            continue
        # a sum per row (per image), accumulated in float64 without a float64 copy of t
        rows = t.detach().reshape(t.shape[0] if t.ndim else 1, -1).sum(1, dtype=torch.float64)
        w = torch.arange(1, len(rows) + 1, device=rows.device, dtype=torch.float64)
        out += [float(t.numel()), rows.sum().item(), (rows * w).sum().item() / len(rows)]
    return out


def code_version() -> str:
    """Package version plus the git commit of the source tree when there is one."""
    here = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=12"],
            cwd=here, capture_output=True, text=True, timeout=10,
        )
        if rev.returncode == 0 and rev.stdout.strip():
            return f"{__version__}+g{rev.stdout.strip()}"
    except (OSError, subprocess.SubprocessError):
        pass
    return __version__


def provenance(config: dict | None = None, seed: int | None = None, *,
               settings: dict | None = None) -> dict:
    """What to store beside every result: code version, resolved config, seed, and the
    settings (function arguments, input files) that made it."""
    import torch

    out = {
        "code_version": code_version(),
        "torch_version": str(torch.__version__),
        "seed": seed,
        "config": config,
    }
    if settings is not None:
        out["settings"] = settings
    return out
