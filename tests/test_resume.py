"""A training killed at any moment continues from its last finished epoch, to the same end."""

import os
import signal
import subprocess
import sys
import textwrap

import pandas as pd
import pytest
import torch

from sicompress.engine import load_resume_state

from conftest import synthetic_study

EPOCHS = 30

TRAIN = textwrap.dedent(f"""
    import sys, torch
    torch.set_num_threads(1)
    from sicompress.trainings import Training, train_e2e
    from sicompress.engine import TrainSettings
    data, out = sys.argv[1], sys.argv[2]
    settings = TrainSettings(epochs={EPOCHS}, lr=0.02, step_size=10, batch_size=64, seed=3)
    train_e2e(Training.in_folders(data, out, settings, predictions=None,
                                  log=lambda m: print(m, flush=True)),
              width=0.0625, hidden=[16], dropout=0.3)
""")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return synthetic_study(tmp_path_factory.mktemp("data"), train_per_class=40, si_fraction=0.1)


def train(data, out, **kw):
    out.mkdir(exist_ok=True)
    return subprocess.Popen([sys.executable, "-c", TRAIN, str(data), str(out)], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kw)


def test_killed_training_resumes_to_the_same_end(data, tmp_path, device):
    whole = train(data, tmp_path / "whole")
    log_whole = whole.communicate(timeout=600)[0]
    assert whole.returncode == 0, log_whole

    out = tmp_path / "killed"
    proc = train(data, out)
    seen = []
    for line in proc.stdout:  # kill as soon as the third epoch has ended
        seen.append(line)
        if line.lstrip().startswith(f"epoch   3/{EPOCHS}"):
            os.kill(proc.pid, signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "".join(seen)
    assert not (out / "metrics.json").exists() and not (out / "model.pt").exists()
    # when epoch 3 is logged, epoch 2's state is on disk (epoch 3's may still be on its way);
    # a kill in the middle of a write leaves a hidden temporary, never taken for the state
    assert load_resume_state(out / "resume.pt", {}, print)["epoch"] >= 2

    again = train(data, out)
    log_again = again.communicate(timeout=600)[0]
    assert again.returncode == 0, log_again
    assert "resume: continuing after epoch" in log_again
    assert f"epoch   1/{EPOCHS}" not in log_again  # the finished epochs were not run again
    assert not (out / "resume.pt").exists()  # removed once the outputs are written
    assert not list(out.glob(".*.tmp*"))  # the killed writer's temporaries were cleared

    cols = ["epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc"]
    a = pd.read_csv(tmp_path / "whole/history.csv")[cols]
    b = pd.read_csv(out / "history.csv")[cols]
    if device.type != "cpu":  # GPU kernels (bf16, atomics) do not repeat bit for bit
        pd.testing.assert_frame_equal(a[["epoch", "lr"]], b[["epoch", "lr"]])
        assert f"images on {device}" in log_again
        return
    pd.testing.assert_frame_equal(a, b)
    wa = torch.load(tmp_path / "whole/model.pt", weights_only=True)["state_dict"]
    wb = torch.load(out / "model.pt", weights_only=True)["state_dict"]
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


def test_foreign_or_truncated_state_is_not_resumed(tmp_path):
    path = tmp_path / "resume.pt"
    logs = []
    assert load_resume_state(path, {"settings": {}}, logs.append) is None  # absent: silent
    assert logs == []
    torch.save({"settings": {"lr": 0.1}, "epoch": 3}, path)
    assert load_resume_state(path, {"settings": {"lr": 0.05}}, logs.append) is None
    assert "other settings" in logs[-1]
    assert load_resume_state(path, {"settings": {"lr": 0.1}}, logs.append)["epoch"] == 3
    path.write_bytes(path.read_bytes()[:20])  # truncated, as by a full disk
    assert load_resume_state(path, {"settings": {"lr": 0.1}}, logs.append) is None
    assert "cannot read" in logs[-1]


def test_diverging_e2e_fails_naming_lr_and_epoch(data, tmp_path):
    from sicompress.trainings import Training, train_e2e
    from sicompress.engine import DivergedError, TrainSettings

    settings = TrainSettings(epochs=3, lr=1e6, step_size=2, batch_size=64)
    with pytest.raises(DivergedError, match=r"non-finite at epoch 1 with lr 1e\+06"):
        train_e2e(Training.in_folders(data, tmp_path, settings, predictions=None,
                                      log=lambda m: None),
                  width=0.0625, hidden=[16], dropout=0.0)
    assert not (tmp_path / "model.pt").exists() and not (tmp_path / "metrics.json").exists()


def test_state_snapshot_is_independent_of_training_that_goes_on(tmp_path):
    from sicompress.engine import BackgroundWriter, _resume_state

    model = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.ones(4, 3)).sum().backward()
    opt.step()
    sched = torch.optim.lr_scheduler.StepLR(opt, 2)
    rows = [{"epoch": 1, "val_acc": 0.5}]
    state = _resume_state({"settings": {}}, 1, model, opt, sched, torch.device("cpu"), rows,
                          {"epoch": 1, "acc": 0.5, "state": None}, 1.0)
    weight = model.weight.detach().clone()
    momentum = opt.state[model.weight]["momentum_buffer"].clone()
    writer = BackgroundWriter()
    writer.submit(tmp_path / "resume.pt", state)
    with torch.no_grad():  # training goes on: in-place changes must not reach the snapshot
        model.weight.add_(1.0)
        opt.state[model.weight]["momentum_buffer"].mul_(0)
    rows.append({"epoch": 2, "val_acc": 0.6})
    writer.close()
    saved = torch.load(tmp_path / "resume.pt", weights_only=True)
    assert torch.equal(saved["model"]["weight"], weight)
    assert torch.equal(saved["optimizer"]["state"][0]["momentum_buffer"], momentum)
    assert saved["history"] == [{"epoch": 1, "val_acc": 0.5}] and saved["epoch"] == 1


def test_a_failed_background_write_is_raised(tmp_path):
    from sicompress.engine import BackgroundWriter

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    writer = BackgroundWriter()
    writer.submit(blocker / "resume.pt", {"x": 1})  # its folder cannot be made
    with pytest.raises(OSError):
        writer.close()
    writer.close()  # raised once


def test_state_is_due_every_so_many_seconds_never_after_the_last_epoch():
    from sicompress.engine import state_due

    assert [state_due(e, 5, 0.0, 0) for e in range(1, 6)] == [True] * 4 + [False]
    assert not state_due(3, 5, 299.9, 300) and state_due(3, 5, 300.0, 300)
    assert not state_due(5, 5, 1e9, 300)  # the last epoch's results are written at once


def test_resume_every_bounds_the_states_written_and_is_no_part_of_the_identity(tmp_path):
    """resume_every 0 writes after every epoch but the last; a long interval writes none; a
    state is resumed under other compute settings (they change how fast, not what)."""
    from sicompress.model import build_model
    from sicompress.networks import vgg_arch
    from sicompress.engine import TrainSettings, fit, settings_from_config

    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8, generator=g)
    y = torch.arange(64) % 4
    base = dict(epochs=3, lr=0.05, step_size=2, batch_size=32, seed=1)

    def run(path, **compute):
        logs = []
        torch.manual_seed(0)
        model = build_model(vgg_arch(0.0625, hidden=[8], dropout=0.0, num_classes=4))
        res = fit(model, (x, y), (x, y), TrainSettings(**base, **compute), log=logs.append,
                  resume=path)
        return res, "\n".join(logs)

    _, log = run(tmp_path / "never.pt", resume_every=1e9)
    assert not (tmp_path / "never.pt").exists() and "[resume state]" not in log

    whole, log = run(tmp_path / "every.pt", resume_every=0)
    assert load_resume_state(tmp_path / "every.pt", {}, print)["epoch"] == 2  # not after 3
    assert log.count("[resume state]") == 2

    again, log = run(tmp_path / "every.pt", resume_every=1e9, compile=False, bf16=False,
                     channels_last=False)
    assert "resume: continuing after epoch 2 of 3" in log
    assert again.history["epoch"].tolist() == [1, 2, 3]
    pd.testing.assert_frame_equal(again.history.drop(columns=["seconds", "images_per_s"]),
                                  whole.history.drop(columns=["seconds", "images_per_s"]))

    # the workflow's compute section reaches the settings; the study's train section does too
    s = settings_from_config({"epochs": 7, "batch_size": 16}, 2,
                             compute={"compile": True, "resume_every": 60, "si_batch_size": 9})
    assert (s.epochs, s.batch_size, s.seed, s.compile, s.resume_every) == (7, 16, 2, True, 60)
