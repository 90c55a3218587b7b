"""Fuzzing the user's side of the CLI: random `--set` values, tampered config.json files and
random flags of `spinnq run` / `deploy` / `simulate` / `energy`.

Every case ends in success or in ONE line on stderr with exit 2 (a `SpinnqError` in the
library) - never a traceback - and a refused case leaves no file behind. `spinnq run` is
stopped right after its settings are accepted (the training itself is not fuzzed here).

Default run: a few hundred cases; `pytest -m slow tests/fuzz/test_fuzz_cli.py`: >= 2,000.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from spinnq import settings as sset
from spinnq.errors import SpinnqError
from spinnq.tasks.common import LOCK_NAME, RunDir
from spinnq.tasks.control.run import ControlConfig, config_from_json, default_config
from spinnq.tasks.gesture.config import GestureConfig
from tests.test_cli_errors import tiny_graph

# Counts per test: (default run, slow run). Slow total: 1000 + 600 + 300 + 300 = 2,200.
COUNTS = {"set": (150, 1000), "config": (100, 600), "run_flags": (40, 300),
          "chip_flags": (25, 300)}


def fuzz(name: str, slow: bool = False):
    return settings(max_examples=COUNTS[name][slow], deadline=None, database=None,
                    suppress_health_check=list(HealthCheck), derandomize=not slow)


def leaf_keys(cls: type, prefix: str = "") -> list[str]:
    """Every settable dotted key of a config dataclass."""
    out = []
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        if dataclasses.is_dataclass(default):
            out += leaf_keys(type(default), prefix + f.name + ".")
        else:
            out.append(prefix + f.name)
    return out


CONTROL_KEYS = [k for k in leaf_keys(ControlConfig)
                if k not in ("env", "seed", "quick", "encoder.steps", "eval_episodes")]
GESTURE_KEYS = leaf_keys(GestureConfig)

NUMBERS = st.one_of(st.integers(-10**25, 10**25), st.floats(allow_nan=True,
                                                            allow_infinity=True))
TEXT_VALUES = st.one_of(
    NUMBERS.map(str),
    st.sampled_from(["", "none", "true", "false", "nan", "-inf", "1e400", "0x10", "1_000",
                     "p99.9", "max", "float,chip", "brevitas", ",", "1,2,3", "-1,5",
                     "[1, 2]", "{}", "abc", "  7 ", "1e-3", "0.8V"]),
    st.lists(NUMBERS.map(str), min_size=0, max_size=4).map(",".join),
    st.text(max_size=12),
)
JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), NUMBERS, st.text(max_size=8)),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=6)


def _one_set(task: str, key: str, text: str) -> None:
    """A --set either gives a config that passes every check and survives config.json, or
    raises a SpinnqError whose message is one line naming the key."""
    try:
        if task == "control":
            cfg = default_config("cartpole", quick=True, sets={key: text})
            back = config_from_json(json.loads(json.dumps(sset_json(cfg))))
        else:
            cfg = sset.validate(sset.apply_sets(GestureConfig(), {key: text}))
            back = sset.from_json(GestureConfig, json.loads(json.dumps(sset_json(cfg))))
    except SpinnqError as e:
        msg = str(e)
        assert "\n" not in msg and key.split(".")[-1] in msg, msg
        event("refused")
        return
    event("accepted")
    assert back == cfg, (key, text)


def sset_json(cfg) -> dict:
    from spinnq.files import jsonable

    return jsonable(cfg)


def _set_case(data) -> None:
    task = data.draw(st.sampled_from(["control", "gesture"]))
    key = data.draw(st.sampled_from(CONTROL_KEYS if task == "control" else GESTURE_KEYS))
    _one_set(task, key, data.draw(TEXT_VALUES))


@fuzz("set")
@given(data=st.data())
def test_fuzz_set_values_are_accepted_or_one_line_errors(data):
    _set_case(data)


# ------------------------------------------------------------------------- config.json
def _mutate(d: dict, data) -> dict:
    """A tampered config: a value replaced, a key dropped or added, a group replaced."""
    how = data.draw(st.sampled_from(["value", "number", "drop", "add", "group", "whole",
                                     "none"]))
    if how == "whole":
        return data.draw(JSON_VALUES)
    if how == "none":  # an untouched config must load
        return d
    path = data.draw(st.sampled_from(leaf_keys(ControlConfig)))
    head, _, tail = path.partition(".")
    target = d[head] if tail and isinstance(d.get(head), dict) else d
    key = tail or head
    if how == "value":
        target[key] = data.draw(JSON_VALUES)
    elif how == "number":  # often a valid value of another size: must load or be refused
        target[key] = data.draw(st.one_of(st.integers(-3, 5000), st.floats(-1, 2)))
    elif how == "drop":
        target.pop(key, None)
    elif how == "add":
        target[data.draw(st.text(min_size=1, max_size=6))] = data.draw(JSON_VALUES)
    elif how == "group" and tail:
        d[head] = data.draw(JSON_VALUES)
    return d


def _config_case(data) -> None:
    base = sset_json(default_config(data.draw(st.sampled_from(["cartpole", "acrobot"])),
                                    quick=True))
    cfg = _mutate(json.loads(json.dumps(base)), data)
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        run = RunDir.create("cartpole", run_dir)
        run.release()
        (run_dir / "config.json").write_text(json.dumps(cfg))
        before = sorted(os.listdir(run_dir))
        run = RunDir.open(run_dir)
        try:
            loaded = config_from_json(run.load_config(), file=str(run_dir / "config.json"))
        except SpinnqError as e:
            assert "\n" not in str(e) and "config.json" in str(e)
            event("refused")
        else:
            sset.validate(loaded)  # accepted: it must pass every check
            event("accepted")
        finally:
            run.release()
        assert sorted(os.listdir(run_dir)) == before and LOCK_NAME not in before


@fuzz("config")
@given(data=st.data())
def test_fuzz_tampered_config_json_is_loaded_or_refused_in_one_line(data):
    _config_case(data)


# ---------------------------------------------------------------------------- CLI flags
class Accepted(Exception):
    """Raised in place of the run: the settings passed every check."""


def _cli(args: list[str], cwd: Path) -> tuple[int, str, str]:
    import contextlib
    import io

    from spinnq.cli import main

    out, err = io.StringIO(), io.StringIO()
    old = os.getcwd()
    os.chdir(cwd)
    code = 0
    try:
        with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(out), \
                contextlib.redirect_stderr(err):
            mp.setattr(sys, "argv", ["spinnq", *args])
            try:
                main()
            except SystemExit as e:
                code = e.code or 0
    finally:
        os.chdir(old)
    return code, out.getvalue(), err.getvalue()


def _tree(p: Path) -> list[str]:
    return sorted(str(x.relative_to(p)) for x in p.rglob("*"))


def _check_refusal(code: int, out: str, err: str, before: list[str], after: list[str]):
    assert "Traceback" not in out + err, err
    event("exit 0" if code == 0 else "refused")
    if code == 0:
        return
    assert code == 2, (code, err)
    assert len(err.strip().splitlines()) == 1 and err.startswith("error:"), err
    assert after == before, sorted(set(after) ^ set(before))


def _path_flag(data, tmp: Path) -> str:
    return data.draw(st.sampled_from([
        "", ".", str(tmp / "new"), str(tmp / "deep" / "er" / "new"), str(tmp / "existing"),
        str(tmp / "afile"), str(tmp / "afile" / "x"), "/proc/x", "/proc/x/y"]))


def _run_flags_case(data) -> None:
    args = ["run", data.draw(st.sampled_from(["cartpole", "acrobot", "gesture", "nosuch",
                                              "CartPole-v1"])), "--quick"]
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        (tmp / "existing").mkdir()
        (tmp / "afile").write_text("x")
        for flag, strat in (("--seed", st.integers(-10**20, 10**20).map(str)),
                            ("--steps", st.integers(-5, 10**6).map(str)),
                            ("--episodes", st.integers(-5, 10**6).map(str))):
            if data.draw(st.booleans()):
                args += [flag, data.draw(st.one_of(strat, st.sampled_from(["abc", "1.5", ""])))]
        if data.draw(st.booleans()):
            args += ["--out", _path_flag(data, tmp)]
        for _ in range(data.draw(st.integers(0, 2))):
            key = data.draw(st.sampled_from(CONTROL_KEYS + GESTURE_KEYS + ["nosuch", ""]))
            args += ["--set", f"{key}={data.draw(TEXT_VALUES)}"]
        before = _tree(tmp)

        def accepted(opts):
            raise Accepted

        with pytest.MonkeyPatch.context() as mp:
            mp.setattr("spinnq.tasks.control.cli.run_control", lambda *a, **k: accepted(a))
            mp.setattr("spinnq.tasks.gesture.runner._run", lambda *a, **k: accepted(a))
            try:
                code, out, err = _cli(args, tmp)
            except Accepted:
                event("accepted")
                return  # every flag and setting passed: the run would start now
        _check_refusal(code, out, err, before, _tree(tmp))
        if code == 2:
            assert not (tmp / "runs").exists()


@fuzz("run_flags")
@given(data=st.data())
def test_fuzz_run_flags_never_start_work_on_bad_settings(data):
    _run_flags_case(data)


def _chip_flags_case(data) -> None:
    cmd = data.draw(st.sampled_from(["simulate", "deploy", "energy", "export"]))
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        tiny_graph(tmp / "g.nir")
        (tmp / "existing").mkdir()
        (tmp / "afile").write_text("x")
        shape = data.draw(st.sampled_from([(6, 3), (2, 6, 3), (6, 4), (5,), (0, 3)]))
        x = (np.random.default_rng(0).random(shape) < 0.3).astype(np.float32)
        if data.draw(st.integers(0, 5)) == 0:
            x = x * 0.5  # not spikes: the chip refuses
        np.save(tmp / "x.npy", x)
        (tmp / "text.npy").write_text("1,2,3")
        args = [cmd, str(tmp / data.draw(st.sampled_from(["g.nir", "g.nir", "afile",
                                                           "none.nir"])))]
        if cmd != "export":
            args += ["--input", str(tmp / data.draw(st.sampled_from(["x.npy", "x.npy",
                                                                       "text.npy", "no.npy"])))]
        if cmd != "energy" or data.draw(st.booleans()):
            args += ["--json" if cmd == "energy" else "--out", _path_flag(data, tmp)]
        if data.draw(st.booleans()):
            args += ["--dt", data.draw(st.sampled_from(["1e-4", "0", "-1", "nan", "1e9"]))]
        if cmd in ("deploy", "energy") and data.draw(st.booleans()):
            args += ["--steps", data.draw(st.sampled_from(["-5", "0", "3", "20", "x"]))]
        if cmd in ("deploy", "simulate") and data.draw(st.booleans()):
            args += ["--record", data.draw(st.sampled_from(["lif", "fc", "nosuch", ""]))]
        if cmd in ("deploy", "energy", "export") and data.draw(st.booleans()):
            args += ["--bits", data.draw(st.sampled_from(["8", "4", "3", "-1", "lif=4",
                                                          "4,lif=8", "nosuch=4", "lif=x"]))]
            args += ["--weight-scale", data.draw(st.sampled_from(["max", "p99.9", "p101",
                                                                  "none", "x"]))]
        if cmd == "deploy" and data.draw(st.booleans()):
            args += [data.draw(st.sampled_from(["--summary", "--report"])),
                     _path_flag(data, tmp)]
            args += ["--engine", "torch"]
        if cmd == "energy" and data.draw(st.booleans()):
            args += ["--tick-ms", data.draw(st.sampled_from(["1", "0", "-3", "1e9", "nan"]))]
        before = _tree(tmp)
        code, out, err = _cli(args, tmp)
        _check_refusal(code, out, err, before, _tree(tmp))


@fuzz("chip_flags")
@given(data=st.data())
def test_fuzz_chip_command_flags_end_in_success_or_one_line(data):
    _chip_flags_case(data)


# ------------------------------------------------------------------------ slow: >= 2,000
@pytest.mark.slow
@fuzz("set", slow=True)
@given(data=st.data())
def test_slow_fuzz_set_values(data):
    _set_case(data)


@pytest.mark.slow
@fuzz("config", slow=True)
@given(data=st.data())
def test_slow_fuzz_config_json(data):
    _config_case(data)


@pytest.mark.slow
@fuzz("run_flags", slow=True)
@given(data=st.data())
def test_slow_fuzz_run_flags(data):
    _run_flags_case(data)


@pytest.mark.slow
@fuzz("chip_flags", slow=True)
@given(data=st.data())
def test_slow_fuzz_chip_flags(data):
    _chip_flags_case(data)


def test_fuzz_counts_meet_the_issue():
    """>= 2,000 CLI/settings cases in the slow suite, a few hundred by default."""
    assert sum(s for _, s in COUNTS.values()) >= 2000
    assert 200 <= sum(d for d, _ in COUNTS.values()) <= 500


# ------------------------------------------------- input/output path collisions, all commands
INPUTS = ("g.nir", "x.npy", "d.npz", "f.npz")
# every path a flag may get: the inputs, aliases of them (symlink, hard link, '..'), special
# files (a FIFO, a link to /dev/null), folders (empty, not empty), new paths, nothing
PATH_POOL = (*INPUTS, "link.nir", "hard.npy", "sub/../d.npz", "fifo", "devnull", "empty",
             "full", "new.npz", "new.nir", "new.json", "newdir", "deep/new.json", "missing.npy",
             "full/inner.json")


def _collision_files(tmp: Path) -> None:
    tiny_graph(tmp / "g.nir")
    rng = np.random.default_rng(0)
    np.save(tmp / "x.npy", (rng.random((6, 3)) < 0.3).astype(np.float32))
    for name in ("d.npz", "f.npz"):
        np.savez(tmp / name, x=(rng.random((4, 6, 3)) < 0.3).astype(np.float32),
                 y=rng.integers(0, 2, 4))
    os.symlink(tmp / "g.nir", tmp / "link.nir")
    os.link(tmp / "x.npy", tmp / "hard.npy")
    os.mkfifo(tmp / "fifo")
    os.symlink("/dev/null", tmp / "devnull")
    for d in ("empty", "sub", "full"):
        (tmp / d).mkdir()
    (tmp / "full" / "notes.txt").write_text("mine")


def _collision_args(data, tmp: Path) -> list[str]:
    """(args, paths it reads): one random command line whose every path flag is drawn
    from PATH_POOL, biased to the command's own inputs (the collisions)."""
    cmd = data.draw(st.sampled_from(["inspect", "simulate", "deploy", "export", "energy",
                                     "evaluate", "quantize", "sweep", "run"]))

    def pick(*prefer: str) -> str:
        pool = st.sampled_from(PATH_POOL)
        return str(tmp / data.draw(st.one_of(st.sampled_from(prefer), pool) if prefer
                                   else pool))

    graph, inp, dat = pick("g.nir"), pick("x.npy"), pick("d.npz")
    outs = st.sampled_from(PATH_POOL)
    if cmd == "run":
        return ["run", "gesture", "--quick", "--data-dir", pick("empty"),
                "--out", str(tmp / data.draw(outs))], []
    args, reads = [cmd, graph], [graph]
    if cmd in ("simulate", "deploy", "energy"):
        args += ["--input", inp]
        reads.append(inp)
    if cmd in ("evaluate", "quantize", "sweep"):
        args += ["--data", dat]
        reads.append(dat)
    if cmd in ("simulate", "deploy", "export", "quantize", "sweep"):
        args += ["--out", str(tmp / data.draw(outs))]
    if cmd == "sweep":
        args += ["--space", "bits=8"]
    extra = {"deploy": ["--summary", "--report"], "energy": ["--json", "--report"],
             "evaluate": ["--json", "--report"], "quantize": ["--json", "--report",
                                                              "--finetune"]}.get(cmd, [])
    for flag in extra:
        if data.draw(st.booleans()):
            args += [flag, pick("f.npz") if flag == "--finetune" else str(tmp / data.draw(outs))]
            if flag == "--finetune":
                reads.append(args[-1])
    return args, reads


def _inode(p: str | Path) -> tuple[int, int] | None:
    try:
        st_ = os.stat(p)
    except OSError:
        return None
    return st_.st_dev, st_.st_ino


def _digest(tmp: Path) -> dict[str, str]:
    """Content of every regular file (by hash) and kind of everything else: never opens a
    FIFO or a device."""
    import hashlib

    out = {}
    for p in sorted(tmp.rglob("*")):
        key = str(p.relative_to(tmp))
        if p.is_symlink():
            out[key] = "link:" + os.readlink(p)
        elif p.is_file():
            out[key] = hashlib.sha1(p.read_bytes()).hexdigest()
        else:
            out[key] = "dir" if p.is_dir() else "special"
    return out


def _collision_case(data) -> None:
    import signal

    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        _collision_files(tmp)
        args, reads = _collision_args(data, tmp)
        before = _digest(tmp)
        read = {_inode(p) for p in reads} - {None}  # the files this command reads, by inode
        protected = [n for n in before if _inode(tmp / n) in read]
        protected += ["fifo", "devnull", "full/notes.txt"]  # never replaced, never deleted

        def accepted(*a, **k):
            raise Accepted

        def blocked(*_):
            raise TimeoutError(f"blocked: {args}")

        signal.signal(signal.SIGALRM, blocked)
        signal.alarm(120)
        try:
            with pytest.MonkeyPatch.context() as mp:  # the long work itself is not fuzzed
                for target in ("spinnq.quant.evaluation.evaluate", "spinnq.quant.stages.quantize",
                               "spinnq.sweep.runner.run_sweep", "spinnq.tasks.gesture.runner._run"):
                    mp.setattr(target, accepted)
                try:
                    code, out, err = _cli(args, tmp)
                except Accepted:
                    code, out, err = 0, "", ""
        finally:
            signal.alarm(0)
        after = _digest(tmp)
        assert "Traceback" not in out + err, (args, err)
        for name in protected:  # 0 inputs changed, whatever name or link they had
            assert after.get(name) == before[name], (args, name, err)
        event("exit 0" if code == 0 else "refused")
        if code != 0:
            assert code == 2 and len(err.strip().splitlines()) == 1, (args, code, err)
            assert after == before, (args, sorted(set(after) ^ set(before)))  # 0 files left


COUNTS["collisions"] = (50, 2000)


@fuzz("collisions")
@given(data=st.data())
def test_fuzz_output_input_collisions_never_destroy_an_input(data):
    _collision_case(data)


@pytest.mark.slow
@fuzz("collisions", slow=True)
@given(data=st.data())
def test_slow_fuzz_output_input_collisions(data):
    _collision_case(data)
