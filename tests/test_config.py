"""Bad configurations stop the workflow before any job starts, with the key named."""

from pathlib import Path

import pytest
import yaml

from sicompress.config import ConfigError, check_config, config_problems

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"


def problems(config: dict) -> list[str]:
    return config_problems(config, yaml.safe_load(SCHEMA.read_text()))


def test_the_shipped_configs_are_valid():
    shipped = [ROOT / "config.yaml", ROOT / "tests" / "smoke.yaml", *(ROOT / "config").glob("*.yaml")]
    assert len(shipped) >= 4  # config.yaml, smoke, cpu-real, gpu-quick
    for path in shipped:
        assert problems(yaml.safe_load(path.read_text())) == [], path


@pytest.mark.parametrize("config,expected", [
    ({"train": {"epochs": "ten"}}, "train.epochs: 'ten' is not an integer"),
    ({"train": {"epochs": 2.5}}, "train.epochs: 2.5 is not an integer"),
    ({"lr_search": {"lrs": [0.1, -0.05]}}, "lr_search.lrs[1]: -0.05 must be > 0"),
    ({"head": {"lr": 0}}, "head.lr: 0 must be > 0"),
    ({"compress": {"lr": 0.0}}, "compress.lr: 0.0 must be > 0"),
    ({"data": {"val_fraction": 1.0}}, "data.val_fraction: 1.0 must be < 1"),
    ({"data": {"si_fraction": 0}}, "data.si_fraction: 0 must be > 0"),
    ({"data": {"si_test_fraction": -0.1}}, "data.si_test_fraction: -0.1 must be > 0"),
    ({"lr_search": {"lrs": []}}, "lr_search.lrs: must not be empty"),
    ({"lr_search": {"step_sizes": []}}, "lr_search.step_sizes: must not be empty"),
    ({"compress": {"feature_unit": "neuron"}}, "compress.feature_unit: 'neuron' is not one of channel, element"),
    ({"compress": {"layer_tolerance": -0.01}}, "compress.layer_tolerance: -0.01 must be >= 0"),
    ({"seed": None}, "seed: None is not an integer"),
    ({"benchmark": {"budget_of": "flops"}},
     "benchmark.budget_of: 'flops' is not one of parameters, macs"),
])
def test_each_problem_names_its_key(config, expected):
    assert problems(config) == [expected]


def test_unknown_keys_are_named_at_any_depth():
    found = problems({"trian": {}, "train": {"epoch": 10}, "data": {"synthetic": {"noize": 1}}})
    assert found[0].startswith("data.synthetic.noize: unknown key (known here: ")
    assert found[1].startswith("train.epoch: unknown key (known here: augment, batch_size")
    assert found[2].startswith("trian: unknown key (known here: ")
    assert "compress" in found[2]


def test_compute_settings_live_in_their_own_section():
    assert problems({"compute": {"compile": True, "bf16": False, "channels_last": False,
                                 "si_batch_size": 64, "resume_every": 0}}) == []
    assert problems({"compute": {"resume_every": -1}}) == ["compute.resume_every: -1 must be >= 0"]
    assert problems({"compute": {"threads": 4}})[0].startswith("compute.threads: unknown key")
    # an older config is told where its key went
    assert problems({"train": {"compile": True}, "si": {"batch_size": 10}}) == [
        "si.batch_size: moved to compute.si_batch_size", "train.compile: moved to compute.compile"]


def test_check_config_lists_every_problem(tmp_path):
    with pytest.raises(ConfigError) as err:
        check_config({"train": {"epochs": 0}, "lr_search": {"lrs": []}}, SCHEMA)
    msg = str(err.value)
    assert "train.epochs: 0 must be >= 1" in msg and "lr_search.lrs: must not be empty" in msg
