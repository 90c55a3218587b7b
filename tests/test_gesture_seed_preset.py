"""benchmarks/gesture_seed_preset.py and the README line it feeds: the run's times come from
GNU time's own lines, its files replace the previous run's (whose wall time is kept), and the
line states what the committed JSON says (energy on the Energy section's basis, its range)."""

import copy
import json
from pathlib import Path

from tests.conftest import benchmark

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

GNU_TIME = """\
some output of the run
\tCommand being timed: "/venv/bin/spinnq run gesture --preset seed --out {logs}/gesture-seed"
\tUser time (seconds): 1500.25
\tSystem time (seconds): 20.50
\tPercent of CPU this job got: 55%
\tElapsed (wall clock) time (h:mm:ss or m:ss): 1:02:03
\tMaximum resident set size (kbytes): 2097152
\tExit status: 0
"""


def test_gnu_time_lines_give_wall_cpu_and_rss():
    t = benchmark("gesture_seed_preset").gnu_time(GNU_TIME.format(logs="/x"))
    assert t["wall_s"] == 3723 and t["cpu_s"] == 1520.75 and t["max_rss_mb"] == 2048
    short = GNU_TIME.replace("1:02:03", "2:05.50")
    assert benchmark("gesture_seed_preset").gnu_time(short)["wall_s"] == 125.5


def _logs(tmp: Path) -> Path:
    logs, run = tmp / "L", tmp / "L" / "gesture-seed"
    (run / "plots").mkdir(parents=True)
    mod = benchmark("gesture_seed_preset")
    for name in mod.FILES:
        (run / name).write_text(json.dumps({"file": name}))
    (run / "summary.json").write_text(json.dumps({"timings": {"total_s": 600.0}}))
    (run / "plots" / "curve.png").write_bytes(b"png")
    (logs / "log.txt").write_text(GNU_TIME.format(logs=logs))
    (logs / "commit.txt").write_text("0123456789abcdef\n")
    (logs / "start.txt").write_text("2026-12-06T23:46:32Z\n3.11 1.68 1.55 5/137 21437\n")
    (logs / "end.txt").write_text("2026-12-07T00:48:35Z\n4.00 4.10 3.90 5/137 21437\n")
    (logs / "load.txt").write_text("2026-12-06T23:46:53Z 3.65 1.90 1.63 6/150 21556\n"
                                   "2026-12-06T23:47:53Z 5.35 2.43 1.83 8/152 22276\n")
    return logs


def test_collect_replaces_the_files_and_keeps_the_previous_wall_time(tmp_path):
    mod = benchmark("gesture_seed_preset")
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.json").write_text(json.dumps({"timings": {"total_s": 2414.6}}))
    (out / "report.md").write_text("# r\n\nCreated 2026-11-29T15:48:55Z.\n")
    (out / "README.md").write_text("code at commit\nbfc7bec (later ...)\n")
    logs = _logs(tmp_path)
    info = mod.collect(logs, out)
    m = json.loads((out / "measured.json").read_text())
    assert m == info and m["wall_s"] == 3723 and m["cpu_s"] == 1520.75
    assert m["commit"] == "0123456" and m["command"].startswith("spinnq run gesture")
    assert "L/gesture-seed" in m["command"] and str(logs) not in m["command"]
    assert (m["load_average_1min"]["min"], m["load_average_1min"]["max"]) == (3.65, 5.35)
    assert m["previous"]["wall_s"] == 2414.6 and m["previous"]["commit"] == "bfc7bec"
    assert m["previous"]["created"] == "2026-11-29T15:48:55Z"
    assert json.loads((out / "summary.json").read_text())["timings"]["total_s"] == 600.0
    assert (out / "plots" / "curve.png").read_bytes() == b"png"
    # collected again: the previous run stays the one replaced first
    assert mod.collect(logs, out)["previous"]["wall_s"] == 2414.6
    # a new run collected over it: the run it replaces is the collected one, with CPU time
    (logs / "start.txt").write_text("2026-12-07T04:00:00Z\n1.0 1.0 1.0 5/137 21437\n")
    later = mod.collect(logs, out)["previous"]
    assert (later["wall_s"], later["cpu_s"], later["commit"]) == (3723, 1520.75, "0123456")
    assert later["created"] == "2026-12-06T23:46:32Z"
    assert later["load_average_1min"]["max"] == 5.35


def _committed() -> list[dict]:
    names = ("summary", "report", "measured", "reprice")
    return [json.loads((RESULTS / "gesture_seed_preset" / f"{n}.json").read_text())
            for n in names] + [json.loads((RESULTS / "energy_calibration.json").read_text())]


def test_seed_line_states_the_json_figures_and_the_basis():
    section = benchmark("readme_numbers").gesture_seed_section
    d, rep, m, rp, cal = (copy.deepcopy(x) for x in _committed())
    rep["chip"] |= {"energy_j": 0.4321, "energy_low_j": 0.41, "energy_high_j": 0.47}
    m["cpu_s"], m["wall_s"] = 4321.0, 5000.0
    text = section(d, rep, m, rp, cal)
    assert "0.432 J modelled (0.410-0.470" in text
    assert "72 min 1 s CPU" in text and "83 min 20 s wall" in text
    assert "total, unused PEs off" in text and "0.459 J (-6 %" in text
    assert "published figure inside the range" in text
    rep["chip"]["energy_high_j"] = 0.45
    assert "published figure outside the range" in section(d, rep, m, rp, cal)
