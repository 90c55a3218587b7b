"""spinnq.settings: --set text, CLI flags and config.json go through one set of types and
ranges, for every task."""

import dataclasses
import json

import pytest

from spinnq import settings
from spinnq.errors import SettingsError, SpinnqError
from spinnq.tasks.control.run import ControlConfig, config_from_json, default_config
from spinnq.tasks.gesture.config import GestureConfig


@pytest.mark.parametrize("key, text, message", [
    ("dqn.lr", "abc", "dqn.lr=abc: expected a number"),
    ("dqn.lr", "nan", "dqn.lr=nan: must be > 0"),
    ("dqn.lr", "inf", "must be > 0 and <= 1"),
    ("net.hidden", "-5", "net.hidden=-5: must be >= 1"),
    ("net.hidden", "1000000000,16", "must be >= 1 and <= 4_096"),
    ("net.hidden", "", "needs at least 1"),
    ("dt", "0", "dt=0: must be > 0"),
    ("dqn.total_steps", "-5", "dqn.total_steps=-5: must be >= 1"),
    ("dqn.double", "maybe", "expected true or false"),
    ("stages", "float,nosuch", "must be one of float"),
    ("finetune.percentiles", "p99,q5", "must be matching"),
    ("encoder", "3", "is a group"),
    ("dqn.nosuch", "1", "unknown setting 'nosuch'"),
    ("extra", "1", "expected a mapping"),
])
def test_bad_set_values_are_one_line_settings_errors(key, text, message):
    with pytest.raises(SettingsError, match="--set") as e:
        default_config("cartpole", quick=True, sets={key: text})
    assert message in str(e.value) and "\n" not in str(e.value)


def test_good_set_values_are_typed_like_their_defaults():
    cfg = default_config("cartpole", sets={"dqn.lr": "1e-3", "net.hidden": "32,16",
                                           "dqn.total_steps": "1e4", "dqn.stop_return": "none",
                                           "dqn.double": "false", "stages": "float,chip"})
    assert cfg.dqn.lr == 1e-3 and cfg.net.hidden == (32, 16)
    assert cfg.dqn.total_steps == 10_000 and isinstance(cfg.dqn.total_steps, int)
    assert cfg.dqn.stop_return is None and cfg.dqn.double is False
    assert cfg.stages == ("float", "chip")


@pytest.mark.parametrize("seed", [-1, 2**32, 10**30])
def test_seed_out_of_range_is_refused(seed):
    with pytest.raises(SettingsError, match="seed"):
        default_config("cartpole", seed=seed)


def _saved(**changes) -> dict:
    d = json.loads(json.dumps(dataclasses.asdict(default_config("cartpole", quick=True))))
    for k, v in changes.items():
        head, _, tail = k.partition(".")
        if tail:
            d[head][tail] = v
        else:
            d[head] = v
    return d


@pytest.mark.parametrize("changes, message", [
    ({"net.hidden": "abc"}, "net.hidden=abc: expected a comma list of an integer"),
    ({"net.hidden": [1e9, 16]}, "net.hidden=1000000000: must be >= 1 and <= 4_096"),
    ({"dqn.lr": None}, "dqn.lr=None: expected a number"),
    ({"seed": "zero"}, "seed=zero: expected an integer"),
    ({"dt": 0}, "dt=0.0: must be > 0"),
    ({"dqn.total_steps": -5}, "must be >= 1"),
    ({"quick": "yes"}, "expected true or false"),
    ({"net": 3}, "net must be an object"),
])
def test_tampered_config_json_is_checked_exactly_like_set(changes, message):
    with pytest.raises(SettingsError, match="config.json") as e:
        config_from_json(_saved(**changes), file="config.json")
    assert message in str(e.value)


def test_empty_or_partial_config_json_never_means_the_defaults():
    with pytest.raises(SettingsError, match="lacks setting.*env"):
        config_from_json({}, file="config.json")
    d = _saved()
    del d["dqn"]["lr"]
    with pytest.raises(SettingsError, match="lacks setting.*dqn.lr"):
        config_from_json(d, file="config.json")
    d = _saved()
    d["dqn"]["lrr"] = 1
    with pytest.raises(SettingsError, match="unknown setting.*dqn.lrr"):
        config_from_json(d, file="config.json")


def test_a_saved_config_round_trips():
    cfg = default_config("acrobot", seed=3, quick=True)
    d = json.loads(json.dumps(dataclasses.asdict(cfg)))
    assert config_from_json(d) == cfg
    g = GestureConfig()
    assert settings.from_json(GestureConfig, json.loads(json.dumps(
        dataclasses.asdict(g)))) == g


@pytest.mark.parametrize("key, text", [("train.epochs", "x"), ("frames.size", "0"),
                                       ("frames.size", "7"), ("qat_layers", "torch"),
                                       ("percentiles", ""), ("synth.scale_range", "0,1")])
def test_gesture_settings_go_through_the_same_layer(key, text):
    with pytest.raises(SpinnqError, match=key.split(".")[-1]):
        settings.validate(settings.apply_sets(GestureConfig(), {key: text}))


def test_every_default_config_passes_its_own_limits():
    for env in ("cartpole", "acrobot", "mountaincar", "lunarlander"):
        for quick in (False, True):
            settings.validate(default_config(env, quick=quick))
    settings.validate(GestureConfig())
    settings.validate(ControlConfig())


def test_parse_sets_needs_key_equals_value():
    assert settings.parse_sets(["a.b=1", " c = x "]) == {"a.b": "1", "c": "x"}
    for bad in ("nonsense", "=3"):
        with pytest.raises(SettingsError, match="key=value"):
            settings.parse_sets([bad])
