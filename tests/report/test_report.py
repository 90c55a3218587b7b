"""Reports: report.json's contract, the markdown and the self-contained HTML (tables and
decodable embedded PNGs), atomic writes; a slow test renders the HTML in headless Chromium."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser

import matplotlib.image as mpimg
import numpy as np
import pytest
import torch

from spinnq.errors import InputError
from spinnq.published import published_rows
from spinnq.report import build_report, chip_report, stage, standard_plots, write_report
from spinnq.report.plots import pe_map, spike_raster, training_curves
from spinnq.s2.energy import energy, estimate_counters
from spinnq.s2.program import PESlot, Placement, Population, Program, Projection, Run

PNG = b"\x89PNG\r\n\x1a\n"


def deployment(chips: int = 1):
    pops = {"in": Population("in", "spike_list", (4,)), "h": Population("h", "lif_no_delay", (40,)),
            "o": Population("o", "lif_no_delay", (2,))}
    prog = Program(pops, [Projection("in", "h", "dense", np.ones((40, 4), np.int8), 1.0),
                          Projection("h", "o", "dense", np.ones((2, 40), np.int8), 1.0)],
                   "in", ["o"], depth=2)
    slots = [PESlot(0, 0, "in", 0, 4, {"buffers": 512}), PESlot(0, 1, "h", 0, 20, {"weights": 2048}),
             PESlot(0, 2, "h", 20, 40, {"weights": 2048}), PESlot(chips - 1, 3, "o", 0, 2)]
    pl = Placement(slots, chips, 148, 96 * 1024)
    steps = 22
    counters = estimate_counters(prog, {"in": 0.3, "h": 0.1, "o": 0.2}, steps)
    g = torch.Generator().manual_seed(0)
    spikes = {n: (torch.rand(1, steps, p.size, generator=g) < 0.2).float() for n, p in pops.items()}
    run = Run(spikes, {}, counters, steps)
    return prog, pl, run, energy(pl, run, prog, op="dvfs", tick_s=1e-3)


def cpu_row():
    return {"device": "cpu", "device_name": "test CPU", "latency_s": 2e-3, "throughput_per_s": 900.0,
            "energy_j": None, "kind": "measured", "energy_note": "unavailable: RAPL not readable"}


def a_report():
    prog, pl, run, cost = deployment()
    rep = build_report("cartpole", [stage("float", "reward", 500), stage("PTQ", "reward", 480),
                                    stage("on chip", "reward", 470, kind="modelled")],
                       cost, [cpu_row(), *published_rows("cartpole")], notes=["a note"])
    return rep, prog, pl, run, cost


def test_report_json_has_the_contracted_fields_and_labels(tmp_path):
    rep, prog, pl, run, cost = a_report()
    paths = write_report(tmp_path, rep, standard_plots(rep, cost=cost, placement=pl))
    d = json.loads(paths["json"].read_text())
    assert d["task"] == "cartpole"
    assert [s["drop"] for s in d["stages"]] == [0, 20, 30]
    assert all({"metric", "value", "kind"} <= set(s) for s in d["stages"])
    assert {"pes", "chips", "timesteps", "tick_s", "latency_s", "power_w", "energy_j",
            "operating_point"} <= set(d["chip"]) and d["chip"]["kind"] == "modelled"
    assert d["chip"]["pes"] == 4 and d["chip"]["energy_j"] == pytest.approx(cost.energy_j)
    kinds = [b["kind"] for b in d["baselines"]]
    assert kinds == ["measured", "published", "published"]
    assert d["baselines"][0]["energy_j"] is None  # unavailable stays null
    r = {x["baseline"]: x for x in d["ratios"]}
    assert r["cpu"]["energy_x"] is None
    assert r["cpu"]["latency_x"] == pytest.approx(2e-3 / cost.latency_s)
    # the published GPU and chip rows ran seed A's network, not this one: references only
    assert set(r) == {"cpu"}
    assert [b["compared"] for b in d["baselines"]] == [True, False, False]
    per = d["chip"]["per_population"]
    assert sum(p["energy_j"] for p in per.values()) + d["chip"]["chip_base_j"] == \
        pytest.approx(d["chip"]["energy_j"])
    md = paths["md"].read_text()
    assert "| chip base (all PEs off, x time) |" in md and "other workload" in md


def test_ratios_only_against_the_same_workload_and_on_the_rows_energy_basis():
    from spinnq.report import ratios
    chip = {"energy_j": 2.0, "dynamic_j": 0.5, "latency_s": 1.0, "workload": "w"}
    rows = [{"device": "GTX", "energy_j": 4.0, "latency_s": 1.0, "kind": "published",
             "workload": "w"},
            {"device": "SpiNNaker2 chip", "energy_j": 1.0, "latency_s": 1.0,
             "kind": "published", "workload": "w", "energy_basis": "dynamic"},
            {"device": "Loihi", "energy_j": 1.0, "latency_s": 1.0, "kind": "published",
             "workload": "other"},
            {"device": "RL GPU", "energy_j": 1.0, "latency_s": 2.0, "kind": "published",
             "workload": "w", "energy_basis": "dynamic"},
            {"device": "cpu", "energy_j": 8.0, "latency_s": 3.0, "kind": "measured"}]
    r = {x["baseline"]: x for x in ratios(chip, rows)}
    assert set(r) == {"GTX", "RL GPU", "cpu"}
    assert r["GTX"]["energy_x"] == 2.0 and r["cpu"]["energy_x"] == 4.0
    assert r["RL GPU"]["energy_x"] == 2.0 and r["RL GPU"]["basis"] == "dynamic"


class _Html(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tables, self.imgs, self.cells, self._in = [], [], [], None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self.tables.append(a.get("id"))
        if tag == "img":
            self.imgs.append(a)
        if tag == "td":
            self._in = True

    def handle_endtag(self, tag):
        if tag == "td":
            self._in = None

    def handle_data(self, data):
        if self._in:
            self.cells.append(data)


def test_html_is_self_contained_with_tables_and_decodable_pngs(tmp_path):
    rep, prog, pl, run, cost = a_report()
    spikes = {n: s[0].numpy() for n, s in run.spikes.items()}
    plots = standard_plots(rep, cost=cost, placement=pl, spikes=spikes)
    assert set(plots) == {"cost_comparison", "energy_per_population", "spike_raster", "pe_map"}
    paths = write_report(tmp_path, rep, plots)
    p = _Html()
    p.feed(paths["html"].read_text())
    assert p.tables == ["stages", "chip", "populations", "activity", "baselines", "ratios"]
    assert "unavailable" in p.cells and "modelled" in p.cells and "published" in p.cells
    assert len(p.imgs) == 4
    for img in p.imgs:
        src = img["src"]
        assert src.startswith("data:image/png;base64,")  # nothing fetched from elsewhere
        raw = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert raw.startswith(PNG)
        pixels = mpimg.imread(io.BytesIO(raw), format="png")
        assert pixels.shape[0] > 100 and pixels.shape[1] > 100 and pixels.std() > 0
    md = paths["md"].read_text()
    assert "| stage | metric | value | drop | kind |" in md and "![pe_map](plots/pe_map.png)" in md
    assert (tmp_path / "plots" / "pe_map.png").read_bytes().startswith(PNG)


def test_a_failed_write_leaves_the_previous_report_whole(tmp_path):
    rep = a_report()[0]
    write_report(tmp_path, rep)
    before = (tmp_path / "report.json").read_text()
    bad = dict(rep, extra=object())  # not JSON-able
    with pytest.raises(TypeError):
        write_report(tmp_path, bad)
    assert (tmp_path / "report.json").read_text() == before
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


def test_nan_becomes_null_and_bad_rows_are_refused(tmp_path):
    from spinnq.s2.energy import CycleCosts

    rep = build_report("t", [stage("float", "accuracy", 0.9)], None,
                       [{"device": "cpu", "latency_s": float("nan"), "kind": "measured"}],
                       config=CycleCosts(), tags={"b", "a"}, n=np.int64(3))
    d = json.loads(write_report(tmp_path, rep)["json"].read_text())
    assert d["baselines"][0]["latency_s"] is None and d["chip"] is None and d["ratios"] == []
    assert d["config"]["syn_word"] > 0 and d["tags"] == ["a", "b"] and d["n"] == 3
    with pytest.raises(InputError, match="kind"):
        build_report("t", baselines=[{"device": "x", "latency_s": 1, "kind": "guessed"}])
    with pytest.raises(InputError, match="lacks 'value'"):
        build_report("t", stages=[{"name": "float", "metric": "accuracy"}])
    with pytest.raises(InputError, match="kind"):
        stage("float", "accuracy", 0.9, kind="hoped")


def test_pe_map_raster_and_training_plots_render(tmp_path):
    _, pl, _, _ = deployment(chips=2)
    assert pe_map(pl).startswith(PNG)
    big = {"conv": np.random.default_rng(0).random((50, 16, 15, 15)) < 0.05}
    assert spike_raster(big).startswith(PNG)
    csv = tmp_path / "train.csv"
    csv.write_text("step,loss,reward,phase\n0,1.0,10,a\n1,0.5,,a\n2,0.25,30,b\n")
    assert training_curves(csv).startswith(PNG)
    (tmp_path / "empty.csv").write_text("step,loss\n")
    assert training_curves(tmp_path / "empty.csv") is None


def test_chip_report_writes_everything_from_a_deployment(tmp_path):
    prog, pl, run, cost = deployment()
    csv = tmp_path / "train.csv"
    csv.write_text("step,loss\n0,1\n1,0.5\n")
    paths = chip_report(tmp_path / "rep", "gesture", prog, pl, run, cost,
                        stages=[stage("on chip", "accuracy", 0.9)], training_csv=csv)
    assert {"json", "md", "html", "training_curves", "pe_map", "spike_raster"} <= set(paths)
    d = json.loads(paths["json"].read_text())
    assert d["program"]["depth"] == 2


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.slow
@pytest.mark.skipif(_chromium() is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_headless_chromium_renders_the_tables_and_the_images(tmp_path):
    rep, prog, pl, run, cost = a_report()
    spikes = {n: s[0].numpy() for n, s in run.spikes.items()}
    paths = write_report(tmp_path, rep, standard_plots(rep, cost=cost, placement=pl, spikes=spikes))
    # a probe page loads the report in an iframe-free way: chromium dumps the DOM after
    # layout; images that decoded have naturalWidth > 0, which a script writes into the title
    probe = paths["html"].read_text().replace(
        "</body>", "<script>window.onload=()=>{const i=[...document.images];document.title="
        "'imgs:'+i.length+' decoded:'+i.filter(x=>x.complete&&x.naturalWidth>0).length+"
        "' tables:'+document.querySelectorAll('table').length};</script></body>")
    page = tmp_path / "probe.html"
    page.write_text(probe)
    profile = tempfile.mkdtemp()
    flags = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--no-first-run", f"--user-data-dir={profile}"]
    try:
        dom = subprocess.run(flags + ["--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
                             capture_output=True, text=True, timeout=120).stdout
        shot = tmp_path / "report.png"
        subprocess.run(flags + [f"--screenshot={shot}", "--window-size=1100,2600",
                                paths["html"].as_uri()], capture_output=True, timeout=120)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    assert "<title>imgs:4 decoded:4 tables:5</title>" in dom
    img = mpimg.imread(shot)
    assert img.shape[0] > 1000 and img.std() > 0.05  # a page with content, not blank
    out = os.environ.get("SPINNQ_SCREENSHOT")
    if out:
        shutil.copy(shot, out)


# ----------------------------------------------------------- one content model, two files
def _closed_loop_report():
    prog, pl, run, cost = deployment()
    extra = {"std_return": 3.25, "min_return": 480.0, "episodes": 100}
    rep = build_report("cartpole", [
        stage("float", "return", 500.0, **extra),
        stage("chip", "return", 497.5, kind="emulated", actions_equal_float=0.987, **extra)],
        cost, [cpu_row()], notes=["a note"])
    rep["sections"] = [{"title": "Training", "text": "1234 env steps (measured)."},
                       {"title": "Per decision on the chip", "text": "Modelled: 13 steps."}]
    return rep


def test_markdown_and_html_carry_the_same_tables_lines_and_labels(tmp_path):
    rep = _closed_loop_report()
    paths = write_report(tmp_path, rep)
    md, page = paths["md"].read_text(), paths["html"].read_text()
    p = _Html()
    p.feed(page)
    for head in ("std", "min", "actions = float", "episodes"):
        assert f"<th>{head}</th>" in page and f" {head} |" in md, head
    for cell in ("98.7%", "3.2", "480", "100", "emulated"):
        assert cell in p.cells and f"| {cell} |" in md, cell
    for line in ("1234 env steps (measured).", "Modelled: 13 steps.", "a note",
                 "drop = reference value - this stage's value",
                 "emulated* = the compiled program"):
        text = __import__("html").unescape(page.replace("<i>", "").replace("</i>", ""))
        assert line in md and line.replace("*", "") in text, line
    drops = {s["name"]: s["drop"] for s in json.loads(paths["json"].read_text())["stages"]}
    assert drops == {"float": 0.0, "chip": 2.5}  # positive: worse than the reference


def test_emulated_is_a_kind_and_unknown_kinds_are_refused():
    assert stage("chip", "accuracy", 0.9, kind="emulated")["kind"] == "emulated"
    with pytest.raises(InputError, match="kind"):
        stage("chip", "accuracy", 0.9, kind="guessed")


def test_plots_have_titles_axis_labels_and_a_legend_off_the_bars(monkeypatch, tmp_path):
    import spinnq.report.plots as plots

    monkeypatch.setattr(plots, "_png", lambda fig: fig)
    rep = _closed_loop_report()
    fig = plots.cost_comparison(rep)
    for ax in fig.axes:
        assert ax.get_title() and ax.get_ylabel()
    legend = fig.legends[0]
    assert legend.get_bbox_to_anchor().y0 >= max(ax.get_position().y1 for ax in fig.axes) - 1e-9
    raster = plots.spike_raster({"h": np.eye(5)}, source="float reference")
    assert "float reference" in raster.axes[0].get_title() and raster.axes[0].get_ylabel()
    assert "emulated chip" in plots.spike_raster({"h": np.eye(5)}).axes[0].get_title()
    csv = tmp_path / "train.csv"
    csv.write_text("step,ret,eval_mean\n1,10,\n2,20,15\n")
    curves = plots.training_curves(csv)
    titles = [ax.get_title() for ax in curves.axes]
    assert titles == ["Episode return", "Greedy evaluation, mean return"]
    assert all(ax.get_ylabel() and ax.get_xlabel() == "environment step" for ax in curves.axes)


def test_a_measured_row_is_compared_dynamic_with_dynamic_and_total_with_total():
    """A RAPL/NVML row's energy_j is dynamic (idle subtracted), its energy_total_j the
    package's total: never divided by the chip's total as if it were a total."""
    from spinnq.report import ratios
    chip = {"energy_j": 1.17e-3, "dynamic_j": 0.2e-3, "latency_s": 1e-3,
            "energy_low_j": 1.0e-3, "energy_high_j": 1.5e-3, "dynamic_low_j": 0.1e-3,
            "dynamic_high_j": 0.4e-3}
    row = {"device": "cpu", "kind": "measured", "latency_s": 2e-3, "energy_j": 2e-3,
           "energy_basis": "dynamic", "energy_total_j": 9e-3}
    (r,) = ratios(chip, [row])
    assert r["basis"] == "dynamic" and r["energy_x"] == pytest.approx(10.0)
    assert r["energy_total_x"] == pytest.approx(9 / 1.17)
    assert r["energy_x_range"] == pytest.approx([5.0, 20.0])
    assert r["energy_total_x_range"] == pytest.approx([6.0, 9.0])
    mixed = 2e-3 / 1.17e-3  # dynamic over total: the 1.71x the old report printed
    assert all(abs(v - mixed) > 0.1 for v in (r["energy_x"], r["energy_total_x"]))
    # a row whose basis is unknown gets no energy ratio at all
    (u,) = ratios(chip, [row | {"energy_basis": "unknown", "energy_total_j": None}])
    assert u["energy_x"] is None and "energy_total_x" not in u
    from spinnq.baseline.measure import Measured
    assert Measured.__dataclass_fields__["energy_basis"].default == "dynamic"


def test_the_cost_plot_marks_rows_of_other_workloads_and_the_chips_range():
    from spinnq.report.plots import bar_rows, cost_comparison
    rep = {"chip": {"operating_point": "0.8V", "energy_j": 1e-3, "latency_s": 1e-3,
                    "energy_low_j": 0.8e-3, "energy_high_j": 1.4e-3},
           "baselines": [{"device": "cpu", "kind": "measured", "energy_j": 2e-3,
                          "energy_basis": "dynamic", "latency_s": 2e-3, "compared": True},
                         {"device": "GTX 1650 GPU", "kind": "published", "energy_j": 0.145,
                          "energy_basis": "total", "latency_s": None, "compared": False}]}
    rows = bar_rows(rep)
    assert rows[0]["energy_range"] == (0.8e-3, 1.4e-3)
    assert rows[1]["label"] == "cpu (dynamic)" and not rows[1]["other"]
    assert rows[2]["other"] and "[other workload]" in rows[2]["label"]
    assert cost_comparison(rep).startswith(b"\x89PNG")
