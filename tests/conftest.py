"""Shared fixtures: the NIR paper's third-party graphs and traces."""

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

# Third-party golden data (BSD-3-Clause, provenance in its README), inside the repository so a
# bare clone tests with nothing beside it.
NIR_PAPER = Path(__file__).resolve().parent / "data" / "nir-paper"
BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def assert_same_run(a, b, counters_rtol: float = 0.0) -> None:
    """Two emulator runs (`sq.emulate` results) are the same: steps, saturations, every
    recorded spike and voltage bit for bit, the counters within `counters_rtol` (0: equal)."""
    assert a.steps == b.steps and a.saturations == b.saturations
    assert set(a.spikes) == set(b.spikes) and set(a.v) == set(b.v)
    for k in a.spikes:
        assert np.array_equal(a.spikes[k].numpy(), b.spikes[k].numpy()), k
    for k in a.v:
        assert np.array_equal(a.v[k].numpy(), b.v[k].numpy()), k
    for pop, cs in a.counters.items():
        for name, arr in cs.items():
            np.testing.assert_allclose(b.counters[pop][name], arr, rtol=counters_rtol, atol=0,
                                       err_msg=pop + name)


def dense_lif_graph(rng: np.random.Generator, metadata: dict | None = None,
                    w_meta: dict | None = None, loc: float = 0.0, scale: float = 1.5):
    """Input(4) -> Affine(weights ~ N(loc, scale)) -> LIF(3) -> Output, the small graph the
    resolver and one-answer tests write and read; `w_meta` on the weight node."""
    import nir

    aff = nir.Affine(weight=rng.normal(loc, scale, (3, 4)).astype(np.float32),
                     bias=np.zeros(3, np.float32))
    if w_meta:
        aff.metadata = dict(w_meta)
    lif = nir.LIF(tau=np.full(3, 2e-3), r=np.ones(3), v_leak=np.zeros(3),
                  v_threshold=np.full(3, 0.5), v_reset=np.zeros(3))
    return nir.NIRGraph(nodes={"input": nir.Input(np.array([4])), "fc": aff, "lif": lif,
                               "output": nir.Output(np.array([3]))},
                        edges=[("input", "fc"), ("fc", "lif"), ("lif", "output")],
                        metadata=metadata or {})


def benchmark(name: str) -> ModuleType:
    """`benchmarks/NAME.py` as a module, loaded with the benchmarks folder on the path only
    while it loads (its sibling imports -- provenance, seed_net, readme_numbers -- resolve):
    the one loader of every test that checks a benchmark."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(str(BENCHMARKS))
    return mod


@pytest.fixture(scope="session")
def nir_paper() -> Path:
    if not NIR_PAPER.is_dir():
        pytest.fail(f"the NIR paper's data is missing: expected {NIR_PAPER}")
    return NIR_PAPER


def load_trace(path: Path) -> np.ndarray:
    """A NIR-paper LIF trace: columns input spike, membrane voltage, output spike."""
    return np.loadtxt(path, delimiter=",")


def run_cli(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    """Run `spinnq ARGS` in-process as a user would: (exit code, stdout, stderr)."""
    import sys

    from spinnq.cli import main

    monkeypatch.setattr(sys, "argv", ["spinnq", *map(str, args)])
    code = 0
    try:
        main()
    except SystemExit as e:
        code = e.code or 0
    out, err = capsys.readouterr()
    return code, out, err


def digits_spikes(steps: int = 20, seed: int = 0, test_fraction: float = 0.3
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Real labelled data that ships inside scikit-learn: the 8x8 handwritten digits (1797
    samples, 10 classes), rate-coded into 0/1 spikes (pixel / 16 = firing probability per
    step, seeded). Returns x_train (N, steps, 64) float32, y_train (N,) int64, x_test, y_test;
    the split is stratified and seeded."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    p = (d.data / 16.0).astype(np.float32)
    rng = np.random.default_rng(seed)
    x = (rng.random((len(p), steps, p.shape[1]), dtype=np.float32) < p[:, None, :])
    xtr, xte, ytr, yte = train_test_split(x.astype(np.float32), d.target.astype(np.int64),
                                          test_size=test_fraction, random_state=seed,
                                          stratify=d.target)
    return xtr, ytr, xte, yte


@pytest.fixture(scope="session")
def digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """`digits_spikes()` with its defaults, made once per test session."""
    return digits_spikes()
