"""The smoke workflow on a real single-node SLURM cluster, through profiles/slurm.

The module fixture starts munged, slurmctld and slurmd (Debian's `munge` and `slurm-wlm`; `.ci/run`
installs them) as root, each from a private temporary directory, with its own munge key and socket,
free ports and `SLURM_CONF`, so nothing of the machine's own SLURM or munge is touched. Where that
cannot be done (not root, a binary missing, a daemon that does not come up) every test here is
skipped with the reason. The cluster has no GPU and no accounting: the run switches the profile's
GPU requests off (SICOMPRESS_SLURM_GPUS=0, as on any CPU-only cluster), bounds its memory requests
(SICOMPRESS_SLURM_MEM_MB) and asks for job states with squeue.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "tests" / "smoke.yaml"
SLIM = ROOT / "tests" / "smoke-slurm.yaml"  # on top of SMOKE: every rule once, fewer controls
PROFILE = ROOT / "profiles" / "slurm"
PARTITION = "smoke"
MEM_MB = 1000  # memory bound of every job on the test cluster (SICOMPRESS_SLURM_MEM_MB)
BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scontrol", "scancel", "srun")
# jobs of the smoke run by rule (tests/smoke.yaml: a grid of 2 learning rates x 1 step)
# (and SLIM: 1 control at the chosen k (l1) and 2 at one frontier point, the fine-tuned model
# with its layer SI; layer-wise pruning with one width and its l1 control, both fine-tuned, the
# pruned architecture once from scratch, and the layer SI of the pruned and fine-tuned models)
BENCHMARK_RULES = {"rank_benchmark", "allocate_benchmark", "choose_benchmark_channels",
                   "finetune_benchmark", "train_benchmark_scratch", "finetune_benchmark_unpruned",
                   "summarize_benchmark", "benchmark"}
EXPECTED_JOBS = {"prepare_data": 1, "split": 1, "lr_trial": 2, "select_lr": 1, "train_e2e": 1,
                 "train_head": 1, "layer_si": 7, "plot_layer_si": 7, "cut_layers": 1,
                 "rank_features": 1, "choose_features": 1, "train_compressed": 1,
                 "train_control": 3, "train_scratch": 1, "finetune": 1, "measure_latency": 1,
                 "summarize_controls": 1, "prune_layers": 1, "train_layerwise_width": 1,
                 "choose_layerwise_width": 1, "train_layerwise_control": 1,
                 "summarize_layerwise": 1, "finetune_layerwise": 2,
                 "train_layerwise_scratch": 1, "report": 1,
                 "cache_e2e_features": 1, "cache_cut_features": 1,
                 "cache_layerwise_features": 2,  # SI's and l1's pruned extractors
                 "choose_layerwise_channels": 2}  # and their kept.json
pytestmark = [pytest.mark.slurm, pytest.mark.workflow]


@dataclass
class Cluster:
    base: Path
    env: dict

    def run(self, *cmd: str, timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=timeout)

    def jobs(self) -> list[dict]:
        """Every job slurmctld still knows (finished ones for MinJobAge), as key=value dicts."""
        out = self.run("scontrol", "show", "job", "--oneliner").stdout
        return [dict(re.findall(r"(\S+?)=(\S*)", line)) for line in out.splitlines() if "JobId=" in line]

    def log_tails(self, chars: int = 3000) -> str:
        return "\n".join(f"--- {p.name} ---\n{p.read_text(errors='replace')[-chars:]}"
                         for p in sorted(self.base.glob("*.log")))


def _tail(path: Path, chars: int = 2000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:].strip() or "(empty)"
    except OSError:
        return "(no log)"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(predicate, seconds: float, procs: dict) -> str | None:
    """None once predicate() holds; otherwise why not (a daemon that exited, or the time)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for name, (proc, log) in procs.items():
            if proc.poll() is not None:
                return f"{name} exited with status {proc.returncode}: {_tail(log)}"
        if predicate():
            return None
        time.sleep(0.5)
    return f"not ready after {seconds:.0f} s"


def _node_line(base: Path, env: dict) -> str:
    """CPUs, sockets, cores, threads and RealMemory of this machine as slurmd sees them."""
    proc = subprocess.run(["slurmd", "-C"], env=env, capture_output=True, text=True, timeout=30)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("NodeName=")), None)
    if proc.returncode != 0 or line is None:
        pytest.skip(f"SLURM cannot start: `slurmd -C` failed ({proc.returncode}): "
                    f"{(proc.stderr or proc.stdout)[-1000:]}")
    return " ".join(f for f in line.split() if not f.startswith("NodeName="))


@pytest.fixture(scope="module")
def slurm_cluster():
    """A running single-node SLURM cluster; skips with the reason where one cannot be started."""
    if sys.platform != "linux" or os.geteuid() != 0:
        pytest.skip("SLURM cannot start: the test cluster's daemons must be started as root")
    missing = [b for b in BINARIES if shutil.which(b) is None]
    if missing:
        pytest.skip(f"SLURM cannot start: {', '.join(missing)} not found on PATH "
                    "(Debian: apt-get install slurm-wlm munge; .ci/run installs them)")

    # munged wants its socket directory traversable by all and its key private
    base = Path(tempfile.mkdtemp(prefix="sicompress-slurm-"))
    base.chmod(0o755)
    procs: dict[str, tuple[subprocess.Popen, Path]] = {}
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLURM_", "SBATCH_", "SALLOC_", "SRUN_", "SQUEUE_"))}
    env["SLURM_CONF"] = str(base / "slurm.conf")

    def start(name: str, *cmd: str) -> None:
        log = base / f"{name}.out"
        with open(log, "w") as fh:
            procs[name] = (subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT,
                                            start_new_session=True), log)

    try:
        key = base / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
        sock = base / "munge.sock"
        start("munged", "munged", "--foreground", f"--key-file={key}", f"--socket={sock}",
              f"--pid-file={base / 'munged.pid'}", f"--log-file={base / 'munged.log'}",
              f"--seed-file={base / 'munged.seed'}")
        if why := _wait(sock.exists, 20, procs):
            pytest.skip(f"SLURM cannot start: munged: {why}")

        host = socket.gethostname().split(".")[0]
        (base / "state").mkdir()
        (base / "spool").mkdir()
        (base / "slurm.conf").write_text(f"""\
ClusterName=sicompress-test
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={sock}
SlurmUser=root
SlurmdUser=root
StateSaveLocation={base / 'state'}
SlurmdSpoolDir={base / 'spool'}
SlurmctldPidFile={base / 'slurmctld.pid'}
SlurmdPidFile={base / 'slurmd.pid'}
SlurmctldLogFile={base / 'slurmctld.log'}
SlurmdLogFile={base / 'slurmd.log'}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
MinJobAge=3600
KillWait=5
MailProg=/bin/true
NodeName={host} NodeAddr=127.0.0.1 {_node_line(base, env)} State=UNKNOWN
PartitionName={PARTITION} Nodes=ALL Default=YES MaxTime=INFINITE State=UP
""")
        # The plugin's job step calls srun with every SLURM_* variable but a few removed,
        # SLURM_CONF among them, so srun would look for /etc/slurm/slurm.conf: the jobs get an
        # srun first on their PATH that puts it back.
        (base / "bin").mkdir()
        (base / "bin" / "srun").write_text(
            f"#!/bin/sh\nSLURM_CONF='{env['SLURM_CONF']}' exec '{shutil.which('srun')}' \"$@\"\n")
        (base / "bin" / "srun").chmod(0o755)
        env["PATH"] = os.pathsep.join([str(base / "bin"), env.get("PATH", "")])

        start("slurmctld", "slurmctld", "-D", "-f", env["SLURM_CONF"])
        start("slurmd", "slurmd", "-D", "-N", host, "-f", env["SLURM_CONF"])

        def idle() -> bool:
            proc = subprocess.run(["sinfo", "--noheader", "--Node", "--format=%T"], env=env,
                                  capture_output=True, text=True, timeout=30)
            return proc.returncode == 0 and proc.stdout.strip() == "idle"

        if why := _wait(idle, 60, procs):
            logs = "; ".join(f"{n}: {_tail(base / f'{n}.log', 800)}" for n in ("slurmctld", "slurmd"))
            pytest.skip(f"SLURM cannot start: node not idle in sinfo: {why}; {logs}")
        yield Cluster(base, env)
    finally:
        if "slurmctld" in procs:  # end the jobs of this cluster before its daemons
            subprocess.run(["scancel", "--user", "root"], env=env, capture_output=True, timeout=30)
            time.sleep(2)
        for proc, _ in reversed(list(procs.values())):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
        shutil.rmtree(base, ignore_errors=True)


def snakemake_slurm(cluster: Cluster, workdir: Path, *targets: str,
                    configfiles: tuple[Path, ...] = ()) -> subprocess.CompletedProcess:
    """`snakemake --profile profiles/slurm --executor slurm` on the smoke config, on the test cluster."""
    exe = shutil.which("snakemake") or str(Path(sys.executable).parent / "snakemake")
    env = dict(cluster.env)
    # jobs run `python -m snakemake` in the submitting environment (sbatch --export=ALL)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(SICOMPRESS_SLURM_PARTITION=PARTITION, SICOMPRESS_SLURM_GPUS="0",
               SICOMPRESS_SLURM_MEM_MB=str(MEM_MB))
    cmd = [exe, "--profile", str(PROFILE), "--executor", "slurm", "--directory", str(workdir),
           "--configfile", str(SMOKE), str(SLIM), *map(str, configfiles),
           "--max-threads", "1",  # two jobs side by side on the 2 CPUs of a small machine
           "--retries", "0",  # a failure shows at once
           "--slurm-status-command", "squeue",  # no accounting: sacct cannot answer
           "--slurm-init-seconds-before-status-checks", "2",
           "--slurm-keep-successful-logs", *targets]
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    except subprocess.TimeoutExpired as e:
        out, err = (x.decode(errors="replace") if isinstance(x, bytes) else x or ""
                    for x in (e.stdout, e.stderr))
        raise AssertionError(f"snakemake through SLURM did not finish in 1200 s:\n{out[-4000:]}\n"
                             f"{err[-6000:]}\n{_slurm_logs(workdir)}\n{cluster.log_tails()}")
    if proc.returncode != 0:
        raise AssertionError(f"snakemake through SLURM failed ({proc.returncode}):\n"
                             f"{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}\n"
                             f"{_slurm_logs(workdir)}\n{cluster.log_tails()}")
    return proc


def _slurm_logs(workdir: Path, chars: int = 1500) -> str:
    logs = sorted((workdir / ".snakemake" / "slurm_logs").rglob("*.log"))
    return "\n".join(f"--- {p.relative_to(workdir)} ---\n{_tail(p, chars)}" for p in logs[-6:])


def _rule(job: dict) -> str:
    """The rule of a job from the comment the plugin gives it: rule_<name>[_wildcards_<values>]."""
    return re.sub(r"_wildcards_.*$", "", job.get("Comment", "")).removeprefix("rule_")


def _minutes(limit: str) -> int:
    """SLURM's [D-]HH:MM:SS time limit in minutes."""
    days, _, hms = limit.rpartition("-")
    h, m, s = (int(x) for x in hms.split(":"))
    return int(days or 0) * 1440 + h * 60 + m + round(s / 60)


@pytest.fixture(scope="module")
def slurm_run(slurm_cluster, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("slurm-smoke")
    before = {job["JobId"] for job in slurm_cluster.jobs()}
    proc = snakemake_slurm(slurm_cluster, workdir)
    jobs = [job for job in slurm_cluster.jobs() if job["JobId"] not in before]
    return workdir, proc, jobs


def test_smoke_workflow_runs_to_the_end_through_slurm(slurm_run):
    workdir, proc, jobs = slurm_run
    for path in ("results/report/report.md", "results/report/summary.csv", "results/e2e/model.pt",
                 "results/head/model.pt", "results/compressed/model.pt"):
        assert (workdir / path).is_file() and (workdir / path).stat().st_size > 0, path

    # every job went through sbatch: snakemake names its SLURM ids, slurmctld ran them all
    out = proc.stdout + proc.stderr
    submitted = re.findall(r"has been submitted with SLURM jobid (\d+)", out)
    assert len(submitted) == sum(EXPECTED_JOBS.values()), out[-3000:]
    assert sorted(submitted, key=int) == sorted((j["JobId"] for j in jobs), key=int)
    assert Counter(_rule(j) for j in jobs) == EXPECTED_JOBS
    assert {j["JobState"] for j in jobs} == {"COMPLETED"}
    for rule in EXPECTED_JOBS:  # SLURM's own log of every rule's job (kept for the test)
        assert list((workdir / ".snakemake" / "slurm_logs" / f"rule_{rule}").rglob("*.log")), rule


def test_profile_resources_reach_sbatch(slurm_run):
    """Partition, time limit per rule, memory (bounded) and no GPU, as SLURM recorded them."""
    _, _, jobs = slurm_run
    profile = yaml.safe_load((PROFILE / "profile.yaml").read_text())
    runtimes = {rule: res["runtime"] for rule, res in profile["set-resources"].items()}
    # every rule has its own limits: the study's that ran here, and the criteria benchmark's
    # (off in this study; `test_every_rule_has_its_cluster_settings` lists every rule)
    assert set(runtimes) == set(EXPECTED_JOBS) | BENCHMARK_RULES
    for job in jobs:
        rule = _rule(job)
        assert job["Partition"] == PARTITION, job
        assert _minutes(job["TimeLimit"]) == runtimes[rule], (rule, job["TimeLimit"])
        assert job["MinMemoryNode"] == f"{MEM_MB}M", (rule, job["MinMemoryNode"])
        assert "gpu" not in " ".join(v for k, v in job.items() if k.startswith("Tres")), job
        assert job["NumCPUs"] == "1", job  # --max-threads 1


GPU_RULES = {"lr_trial", "train_e2e", "train_head", "layer_si", "rank_features", "train_compressed",
             "train_control", "train_scratch", "finetune", "measure_latency", "prune_layers",
             "train_layerwise_width", "train_layerwise_control", "finetune_layerwise",
             "train_layerwise_scratch", "cache_e2e_features", "cache_cut_features", "cache_layerwise_features"}


def profile_resources(tmp_path: Path, **environ: str) -> dict[str, str]:
    """The resources line of each rule in a dry run through profiles/slurm (no SLURM needed)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SICOMPRESS_SLURM_")}
    env.update(environ)
    exe = shutil.which("snakemake") or str(Path(sys.executable).parent / "snakemake")
    proc = subprocess.run([exe, "--profile", str(PROFILE), "--directory", str(tmp_path), "-n",
                           "--configfile", str(SMOKE), str(SLIM)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    found = re.findall(r"^rule (\w+):\n(?:    (?!resources:).*\n)*    resources: (.*)$", proc.stdout, re.M)
    return {rule: res for rule, res in found}


@pytest.mark.parametrize("gpus", [None, "0"])
def test_profile_gpu_and_partition_settings(tmp_path, gpus):
    """By default each training/SI job asks for one GPU on the GPU partition; GPUS=0 asks none."""
    environ = {"SICOMPRESS_SLURM_PARTITION": "cpuq", "SICOMPRESS_SLURM_GPU_PARTITION": "gpuq"}
    if gpus is not None:
        environ["SICOMPRESS_SLURM_GPUS"] = gpus
    resources = profile_resources(tmp_path, **environ)
    assert set(resources) >= set(EXPECTED_JOBS), resources
    for rule in EXPECTED_JOBS:
        res = resources[rule]
        if rule in GPU_RULES:
            assert "slurm_partition=gpuq" in res and f"gpu={gpus or 1}" in res.split(", "), (rule, res)
        else:
            assert "slurm_partition=cpuq" in res and "gpu=" not in res, (rule, res)
        assert "slurm_account=" in res.split(", "), (rule, res)  # none set: the plugin guesses


def test_partial_rerun_through_slurm_leaves_e2e_alone(slurm_run, slurm_cluster, tmp_path):
    """The partial re-run of docs/running.md ("One target"): a new compress.feature_tolerance,
    one target, one job."""
    workdir, _, _ = slurm_run
    e2e = workdir / "results/e2e/model.pt"
    stamp = e2e.stat().st_mtime_ns
    tolerance = tmp_path / "tolerance.yaml"
    tolerance.write_text("compress:\n  feature_tolerance: 0.05\n")
    before = {job["JobId"] for job in slurm_cluster.jobs()}
    snakemake_slurm(slurm_cluster, workdir, "results/compress/selected.json", configfiles=(tolerance,))
    jobs = [job for job in slurm_cluster.jobs() if job["JobId"] not in before]
    assert [_rule(j) for j in jobs] == ["choose_features"], [_rule(j) for j in jobs]
    assert e2e.stat().st_mtime_ns == stamp  # e2e not retrained
