"""Shared fixtures: the NIR paper's third-party graphs and traces."""

from pathlib import Path

import numpy as np
import pytest

NIR_PAPER = Path(__file__).resolve().parents[1].parent / "shared" / "external" / "nir-paper"


@pytest.fixture(scope="session")
def nir_paper() -> Path:
    if not NIR_PAPER.is_dir():
        pytest.fail(f"the NIR paper's data is missing: expected {NIR_PAPER} (../shared beside "
                    "the checkout)")
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
