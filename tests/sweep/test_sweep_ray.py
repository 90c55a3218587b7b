"""`spinnq sweep` on Ray, end to end, on a network trained outside spinnq (digits):
killed midway and resumed, the front checked against trials.csv, the best trial's numbers
reproduced by `spinnq evaluate` + `spinnq energy` from the commands the sweep wrote."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_cli

pytest.importorskip("ray.tune")

SRC = str(Path(__file__).resolve().parents[2] / "src")
SPACE = ["--space", "bits=8,4", "--space", "operating_point=0.5V,0.8V,dvfs",
         "--space", "timesteps=4,8,12,99"]  # timesteps 99 > the data's 12: failed trials
N_TRIALS = 2 * 3 * 4 + 1  # the grid + the default configuration


def spinnq(*args: str) -> list[str]:
    return [sys.executable, "-c", "from spinnq.cli import main; main()", *map(str, args)]


def env() -> dict:
    return {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted((folder / "trials").glob("*.json"))}


def _addr(hex_addr: str) -> str:
    """/proc/net/tcp{,6} address (little-endian words) -> text."""
    import ipaddress

    raw = bytes.fromhex(hex_addr)
    raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    ip = ipaddress.ip_address(raw)
    return str(ip.ipv4_mapped or ip) if ip.version == 6 and ip.ipv4_mapped else str(ip)


def listening_addresses(pgid: int) -> set[str]:
    """The addresses TCP sockets listen on in every process of a process group (Linux)."""
    inodes = set()
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            if os.getpgid(int(d.name)) != pgid:
                continue
            for fd in (d / "fd").iterdir():
                link = os.readlink(fd)
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
        except (OSError, ProcessLookupError):
            continue
    out = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            f = line.split()
            if f[3] == "0A" and f[9] in inodes:  # state LISTEN, one of ours
                out.add(_addr(f[1].split(":")[0]))
    return out


@pytest.fixture(scope="module")
def swept(digits_net, tmp_path_factory):
    """A sweep killed (SIGKILL, whole process group) after its 3rd finished trial (its Ray
    checked to listen on loopback only), then resumed: (folder, records before the kill,
    resume's stdout)."""
    graph, data, _ = digits_net
    out = tmp_path_factory.mktemp("sweep") / "digits"
    args = [graph, "--data", data, "--out", out, *SPACE, "--cpus", "1", "--quiet",
            "--min-accuracy", "0.85"]
    proc = subprocess.Popen(spinnq("sweep", *args), env=env(), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while len(list((out / "trials").glob("*.json"))) < 3:
            assert proc.poll() is None, "the sweep ended before it could be killed"
            assert time.monotonic() < deadline, "no trial finished in 240 s"
            time.sleep(0.02)
        listening = listening_addresses(proc.pid)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert listening and all(a in ("127.0.0.1", "::1", "::ffff:127.0.0.1")
                             for a in listening), listening  # Ray on loopback only
    before = digest(out)
    r = subprocess.run(spinnq("sweep", *args, "--resume"), env=env(), capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Token authentication" not in r.stdout + r.stderr  # Ray's notices: in sweep.log
    assert (out / "sweep.log").exists()
    return out, before, r.stdout


def read_csv(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def test_killed_sweep_resumes_without_rerunning_finished_trials(swept):
    out, before, stdout = swept
    assert 3 <= len(before) < N_TRIALS
    after = digest(out)
    assert len(after) == N_TRIALS
    assert {k: after[k] for k in before} == before  # finished records untouched
    ran = N_TRIALS - len(before)
    assert f"({ran} run now, {len(before)} already done)" in " ".join(stdout.split())


def test_trials_csv_has_every_trial_and_failures_are_recorded(swept):
    out, _, _ = swept
    rows = read_csv(out / "trials.csv")
    assert len(rows) == N_TRIALS
    assert list(rows[0])[:9] == ["timesteps", "bits", "weight_scale", "operating_point",
                                 "tick_ms", "neurons_per_pe", "finetune", "accuracy",
                                 "energy_j"]
    for col in ("dynamic_j", "latency_s", "pes", "chips", "error"):
        assert col in rows[0]
    failed = [r for r in rows if r["error"]]
    assert len(failed) == 6 and all(r["timesteps"] == "99" for r in failed)
    assert all("timesteps 99" in r["error"] for r in failed)
    good = [r for r in rows if not r["error"]]
    assert all(float(r["accuracy"]) > 0.5 for r in good)


def test_pareto_csv_equals_the_non_dominated_set_of_trials_csv(swept):
    out, _, _ = swept
    rows = [r for r in read_csv(out / "trials.csv") if not r["error"]]
    pts = [(float(r["accuracy"]), float(r["energy_j"]), r["key"]) for r in rows]
    front = {k for a, e, k in pts
             if not any(a2 >= a and e2 <= e and (a2, e2) != (a, e) for a2, e2, _ in pts)}
    assert {r["key"] for r in read_csv(out / "pareto.csv")} == front
    assert 1 <= len(front) < len(rows)


def test_best_trial_is_reproduced_exactly_by_evaluate_and_energy(swept, monkeypatch, capsys,
                                                                 tmp_path, digits_net):
    """The commands best.md gives, run as a user would: `spinnq evaluate` gives the trial's
    accuracy and cost, `spinnq energy` its cost, `spinnq deploy` its spikes, all exactly."""
    out, _, _ = swept
    _, data, _ = digits_net
    summary = json.loads((out / "summary.json").read_text())
    b = summary["best"]
    assert b["accuracy"] >= 0.85
    assert (out / "best.nir").exists()
    cmds = [line for line in (out / "best.md").read_text().splitlines()
            if line.startswith("spinnq ")]
    assert [c.split()[1] for c in cmds] == ["evaluate", "deploy", "energy"]
    monkeypatch.chdir(tmp_path)
    for c in cmds:
        code, _, err = run_cli(monkeypatch, capsys, *shlex.split(c)[1:])
        assert code == 0, err
    chip = json.loads((tmp_path / "best_eval.json").read_text())["chip"]
    cost = json.loads((tmp_path / "best_energy.json").read_text())
    assert chip["accuracy"] == b["accuracy"]
    for k in ("energy_j", "dynamic_j", "latency_s", "pes"):
        assert chip[k] == b[k], k  # exactly, not approximately
    for k in ("energy_j", "dynamic_j", "latency_s", "pes", "chips"):
        assert cost[k] == b[k], k
    spikes = np.load(tmp_path / "best_out.npz")
    (name,) = [k for k in spikes.files if k.startswith("spikes/")]
    y = np.load(data)["y"]
    assert float((spikes[name].sum(1).argmax(-1) == y).mean()) == b["accuracy"]


def test_report_marks_default_and_seed_and_lists_the_front(swept):
    out, _, _ = swept
    html = (out / "report.html").read_text()
    assert "id='plot-front'" in html and "id='pareto'" in html
    md = (out / "report.md").read_text()
    assert "Against the default configuration" in md and "Against the seed configuration" in md
    assert (out / "plots" / "front.png").stat().st_size > 5000


def test_sweep_cli_errors_are_one_line(monkeypatch, capsys, digits_net, tmp_path):
    graph, data, _ = digits_net
    code, _, err = run_cli(monkeypatch, capsys, "sweep", graph, "--data", data, "--out",
                           tmp_path / "s", "--space", "bits=8,3")
    assert code == 2 and "8 or 4" in err and "Traceback" not in err
    code, _, err = run_cli(monkeypatch, capsys, "sweep", graph, "--out", tmp_path / "s",
                           "--space", "bits=8")
    assert code == 2 and "--data" in err
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.zeros((3, 4, 64)))
    code, _, err = run_cli(monkeypatch, capsys, "sweep", graph, "--data", bad, "--out",
                           tmp_path / "s", "--space", "bits=8")
    assert code == 2 and "bad.npz" in err and "'y'" in err
    code, _, err = run_cli(monkeypatch, capsys, "sweep", graph, "--data", data, "--out",
                           tmp_path / "s", "--space", "bits=8", "--address",
                           f"127.0.0.1:{free_port()}")
    assert code == 2 and "no Ray head at 127.0.0.1:" in err


def test_a_finished_sweep_folder_needs_resume(monkeypatch, capsys, swept, digits_net):
    out, _, _ = swept
    graph, data, _ = digits_net
    code, _, err = run_cli(monkeypatch, capsys, "sweep", graph, "--data", data, "--out", out,
                           *SPACE)
    assert code == 2 and "--resume" in err


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_sweep_runs_on_an_existing_ray_head_through_address(digits_net, tmp_path):
    """`ray start --head` on loopback only (checked; token authentication on, a secret made
    for this test), then `spinnq sweep --address 127.0.0.1:PORT` with the same token."""
    import secrets
    import shutil
    import tempfile

    graph, data, _ = digits_net
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's sockets live in it
    ray_bin = Path(sys.executable).with_name("ray")
    port = free_port()
    auth = {**env(), "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16),
            "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}  # Ray's single-machine mode: loopback
    head = subprocess.Popen([str(ray_bin), "start", "--head", "--block",
                             "--node-ip-address", "127.0.0.1", "--port", str(port),
                             "--num-cpus", "2", "--include-dashboard", "false",
                             "--temp-dir", temp],
                            start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=auth)
    try:
        time.sleep(15)
        assert head.poll() is None, "ray start --head did not stay up"
        listening = listening_addresses(head.pid)
        assert listening and listening <= {"127.0.0.1", "::ffff:127.0.0.1"}, listening
        out = tmp_path / "sw"
        r = subprocess.run(spinnq("sweep", graph, "--data", data, "--out", out,
                                  "--address", f"127.0.0.1:{port}", "--space", "bits=8,4",
                                  "--space", "operating_point=0.5V,0.8V", "--quiet"),
                           env=auth, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-2000:]
        rows = read_csv(out / "trials.csv")
        assert len(rows) == 4 and not any(row["error"] for row in rows)  # the default is in the grid
        assert (out / "pareto.csv").exists()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(head.pid, signal.SIGTERM)  # the head drains, then stops its processes
        try:
            head.wait(90)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(head.pid, signal.SIGKILL)
            head.wait()
        shutil.rmtree(temp, ignore_errors=True)
