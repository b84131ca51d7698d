"""GPU jobs on one machine claim different GPUs, and a killed job frees its GPU."""

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import torch

from sicompress.devices import claim_gpu, pick_device, visible_ids

CLAIM = textwrap.dedent("""
    import sys
    from sicompress.devices import claim_gpu
    print(claim_gpu(int(sys.argv[2]), sys.argv[1], log=lambda m: print(m, file=sys.stderr)),
          flush=True)
    sys.stdin.read()  # hold the claim until told to go
""")


def claimer(folder, n, env=None):
    """A process that claims one of `n` GPUs and holds it; returns (process, index)."""
    proc = subprocess.Popen([sys.executable, "-c", CLAIM, str(folder), str(n)], text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, **(env or {})})
    return proc, int(proc.stdout.readline())


def test_each_job_claims_a_free_gpu_and_a_killed_job_frees_it(tmp_path, monkeypatch):
    a, ia = claimer(tmp_path, 2)
    b, ib = claimer(tmp_path, 2)
    assert (ia, ib) == (0, 1)
    # more jobs than GPUs: a third job shares the GPU of index pid mod 2 and says so
    lines = []
    with monkeypatch.context() as m:
        for pid, shared in ((7, 1), (10, 0)):  # 7 mod 2 = 1, 10 mod 2 = 0
            m.setattr(os, "getpid", lambda pid=pid: pid)
            assert claim_gpu(2, tmp_path, log=lines.append) == shared
    assert len(lines) == 2 and "all 2 GPUs are claimed by other jobs; sharing GPU 1" in lines[0]
    assert "sharing GPU 0" in lines[1]
    a.kill()  # SIGKILL: the kernel drops the lock
    a.wait()
    d, id_ = claimer(tmp_path, 2)
    assert id_ == 0
    for p in (b, d):
        p.stdin.close()
        p.wait(timeout=30)
    assert "claimed GPU 0 (id 0) of 2" in d.stderr.read()
    assert a.returncode == -signal.SIGKILL


def test_locks_follow_the_visible_device_ids(tmp_path):
    env = {"CUDA_VISIBLE_DEVICES": "5,7"}
    a, ia = claimer(tmp_path, 2, env)
    try:
        assert ia == 0 and (tmp_path / "gpu-5.lock").exists()
        b, ib = claimer(tmp_path, 2, env)
        assert ib == 1 and (tmp_path / "gpu-7.lock").exists()
        b.stdin.close()
        b.wait(timeout=30)
    finally:
        a.stdin.close()
        a.wait(timeout=30)


def test_visible_ids_and_single_gpu(monkeypatch, tmp_path):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert visible_ids(3) == ["0", "1", "2"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-aa, GPU-bb")
    assert visible_ids(2) == ["GPU-aa", "GPU-bb"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")  # fewer names than devices: plain indices
    assert visible_ids(2) == ["0", "1"]
    assert claim_gpu(1, tmp_path) == 0 and not list(tmp_path.iterdir())  # one GPU: no lock


def test_explicit_device_is_taken_as_given():
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device(torch.device("cpu")) == torch.device("cpu")
    if not torch.cuda.is_available():
        assert pick_device(None) == pick_device("auto") == torch.device("cpu")


def test_device_from_the_environment(monkeypatch):
    monkeypatch.setenv("SICOMPRESS_DEVICE", "cpu")
    assert pick_device(None) == pick_device("auto") == torch.device("cpu")
    assert pick_device("meta") == torch.device("meta")  # an explicit device wins
    monkeypatch.setenv("SICOMPRESS_DEVICE", "meta")
    assert pick_device(None) == torch.device("meta")
    if not torch.cuda.is_available():
        for name in ("cuda", "cuda:1"):
            monkeypatch.setenv("SICOMPRESS_DEVICE", name)
            with pytest.raises(RuntimeError, match=f"SICOMPRESS_DEVICE={name}, but torch .* sees no CUDA"):
                pick_device(None)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks what the CUDA test mode does "
                    "on a machine without CUDA")
def test_cuda_test_mode_stops_where_there_is_no_cuda(tmp_path):
    env = {**os.environ, "SICOMPRESS_TEST_DEVICE": "cuda"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(Path(__file__).parent / "test_logs.py")],
                          env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert "SICOMPRESS_TEST_DEVICE=cuda but torch" in proc.stdout + proc.stderr
    assert "passed" not in proc.stdout  # stopped, not skipped
