"""snn-mlir's float32 CPU reference as a referee of spinnq's float reference simulator.

snn-mlir (PyPI 1.0.0, a second NIR toolchain nobody here wrote) lowers a NIR graph through
its SNN MLIR dialect to LLVM and runs it on the CPU (`snn_mlir.run_folder`). That needs its
`snn-opt` tool, built from the snn-mlir repository against MLIR 22 (Debian's
`libmlir-22-dev mlir-22-tools llvm-22`), and `mlir-opt`, `mlir-translate`, `llc` on PATH:

    SNN_OPT=/path/to/snn-opt PATH=/usr/lib/llvm-22/bin:$PATH \\
        python benchmarks/snn_mlir_referee.py          # -> benchmarks/results/snn_mlir_referee.json

Each case runs one seeded spike input through snn-mlir and through `spinnq.simulate` under
the graph's own convention and under NIR's plain reading, and counts the (step, neuron)
entries of the output layer's spikes that differ. The referee's outputs are stored in the
JSON, so `tests/interop/test_snn_mlir_referee.py` re-checks spinnq against them without the
toolchain (and against a live run when `SNN_OPT` is set); `readme_numbers.py readme`
renders the README table from the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import nir
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from provenance import commit  # noqa: E402
from readme_numbers import snn_mlir_section  # noqa: E402

from spinnq.graph import read_graph  # noqa: E402
from spinnq.graph.model import Graph, from_nir  # noqa: E402
from spinnq.graph.simulate import simulate  # noqa: E402
from spinnq.resolver import resolve  # noqa: E402
from spinnq.s2.export import export_graph  # noqa: E402

PAPER = ROOT / "tests" / "data" / "nir-paper"
OUT = ROOT / "benchmarks" / "results" / "snn_mlir_referee.json"
GOLDEN = ROOT / "tests" / "data" / "snn-mlir" / "referee_outputs.json"


def integer_export(name: str, convention: str, dt: float) -> Callable[[], nir.NIRGraph]:
    """`spinnq export` of a paper graph: integer weights, thresholds in weight units."""
    def make() -> nir.NIRGraph:
        g = read_graph(PAPER / f"{name}.nir")
        return export_graph(g, resolve(g, convention=convention, dt=dt).s2())
    return make


def paper(name: str) -> Callable[[], nir.NIRGraph]:
    return lambda: nir.read(PAPER / f"{name}.nir")


# case -> (how to make the NIR graph, convention it was written in, dt, steps, input rate)
CASES: dict[str, tuple[Callable[[], nir.NIRGraph], str, float, int, float]] = {
    "braille_noDelay_bias_zero": (paper("braille_noDelay_bias_zero"), "snntorch", 1e-4, 100,
                                  0.2),
    "braille_noDelay_noBias_subtract": (paper("braille_noDelay_noBias_subtract"), "snntorch",
                                        1e-4, 100, 0.2),
    "cnn_sinabs": (paper("cnn_sinabs"), "sinabs", 1.0, 30, 0.05),
    "lif_norse": (paper("lif_norse"), "norse", 1e-4, 100, 0.3),
    # snn-mlir's reading of the same file: dt = tau / r (= 2.5 ms here), decay 1 - 1/r = 0
    "lif_norse at snn-mlir's dt = tau / r": (paper("lif_norse"), "norse", 2.5e-3, 100, 0.3),
    "braille_noDelay_bias_zero, integer export by spinnq": (
        integer_export("braille_noDelay_bias_zero", "snntorch", 1e-4), "snntorch", 1e-4, 100,
        0.2),
    "cnn_sinabs, integer export by spinnq": (
        integer_export("cnn_sinabs", "sinabs", 1.0), "sinabs", 1.0, 30, 0.05),
}


def spikes_in(shape: tuple[int, ...], steps: int, rate: float, seed: int) -> np.ndarray:
    """A seeded Bernoulli spike input (steps, *shape), float32 0/1."""
    return (np.random.default_rng(seed).random((steps, *shape)) < rate).astype(np.float32)


def output_node(g: Graph) -> str:
    """The node feeding the graph's output (the layer snn-mlir prints)."""
    (src,) = [s for s, d in g.edges if d in g.outputs]
    return src


def referee(ng: nir.NIRGraph, x: np.ndarray) -> np.ndarray:
    """snn-mlir's CPU reference on x: the output layer per step (steps, n)."""
    import snn_mlir
    from snn_mlir import _run

    # snn-mlir 1.0.0's pass list lacks expand-strided-metadata, without which the
    # memref.subview of a padded conv does not lower to LLVM; the pass only rewrites the
    # view's address arithmetic (no value changes). Added once, before finalize-memref.
    if "-expand-strided-metadata" not in _run._MLIR_OPT_PASSES:
        i = _run._MLIR_OPT_PASSES.index("-finalize-memref-to-llvm")
        _run._MLIR_OPT_PASSES.insert(i, "-expand-strided-metadata")
    with tempfile.TemporaryDirectory() as d:
        nir.write(Path(d) / "network.nir", ng)
        np.save(Path(d) / "input.npy", x.reshape(x.shape[0], -1))
        csv = snn_mlir.run_folder(d)
        return np.loadtxt(csv, delimiter=",", ndmin=2).astype(np.float32)


def ours(g: Graph, x: np.ndarray, convention: str, dt: float,
         reset: str | None = None) -> np.ndarray:
    """spinnq's float reference simulator on x: the output layer per step (steps, n)."""
    src = output_node(g)
    flags = {"convention": convention, "dt": dt} | ({"reset": reset} if reset else {})
    tr = simulate(g, x[None], resolve(g, **flags).sim(record=(src,)))
    y = tr.spikes.get(src, tr.v.get(src, tr.out.get(src)))
    return y[0].reshape(x.shape[0], -1).numpy().astype(np.float32)


def compare(theirs: np.ndarray, mine: np.ndarray) -> dict:
    """Differing (step, neuron) entries and the first step that differs."""
    diff = np.argwhere(theirs != mine)
    return {"mismatches": int(len(diff)), "entries": int(theirs.size),
            "first_step": int(diff[0, 0]) if len(diff) else None}


def run_case(name: str, seed: int = 0, live: bool = True, stored: dict | None = None) -> dict:
    make, conv, dt, steps, rate = CASES[name]
    ng = make()
    g = from_nir(ng)
    x = spikes_in(tuple(g.input_shape), steps, rate, seed)
    theirs = referee(ng, x) if live else np.asarray(stored["referee"], dtype=np.float32)
    row = {"case": name, "convention": conv, "dt": dt, "steps": steps, "rate": rate,
           "seed": seed, "referee": theirs.astype(int).tolist(),
           "output_spikes_referee": int(theirs.sum())}
    row["vs_own"] = compare(theirs, ours(g, x, conv, dt))
    row["vs_nir"] = compare(theirs, ours(g, x, "nir", dt, reset="zero"))
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    if not os.environ.get("SNN_OPT"):
        print("set SNN_OPT to snn-mlir's snn-opt binary (see the module docstring)")
        return 2
    rows = [run_case(n, a.seed) for n in CASES]
    for r in rows:
        print(r["case"], "own:", r["vs_own"], "nir:", r["vs_nir"])
    d = {"commit": commit(), "mlir": "22.1.8", "snn_mlir": "1.0.0", "basis": "emulated",
         "cases": rows}
    OUT.write_text(json.dumps(d, indent=1) + "\n")
    GOLDEN.parent.mkdir(parents=True, exist_ok=True)
    GOLDEN.write_text(json.dumps(d | {
        "cases": [{k: r[k] for k in ("case", "seed", "referee")} for r in rows]}) + "\n")
    print(snn_mlir_section(d))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
