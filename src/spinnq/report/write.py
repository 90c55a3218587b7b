"""Write a report dict as report.json, report.md and a self-contained report.html.

    write_report(run_dir, report, plots=None) -> {"json": path, "md": path, "html": path,
                                                   "<plot name>": path of plots/<name>.png}

Each file is written to a temporary name in the same folder and renamed: a reader sees the
old complete file or the new one, never half of one. The HTML embeds its PNGs (base64), so
the single file can be mailed or opened anywhere.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import json
import math
from pathlib import Path

import numpy as np

from spinnq.files import atomic_write

PLOT_TITLES = {
    "cost_comparison": "Energy and latency per inference: chip vs CPU/GPU (log scale)",
    "energy_per_population": "Energy per population (modelled)",
    "spike_raster": "Spike raster of one sample",
    "pe_map": "PEs of the chip, coloured by population",
    "training_curves": "Training curves",
}


def _jsonable(o):
    if dataclasses.is_dataclass(o) and not isinstance(o, type):
        return _jsonable(dataclasses.asdict(o))
    if isinstance(o, set | frozenset):
        return _jsonable(sorted(o, key=str))
    if isinstance(o, dict):
        return {str(k): _jsonable(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [_jsonable(v) for v in o]
    if isinstance(o, np.ndarray):
        return _jsonable(o.tolist())
    if isinstance(o, np.generic):
        o = o.item()
    if isinstance(o, float) and not math.isfinite(o):
        return None  # JSON has no NaN/inf: "unknown"
    if isinstance(o, Path):
        return str(o)
    return o


# ------------------------------------------------------------------------- formatting
_PREFIX = [(1, ""), (1e-3, "m"), (1e-6, "µ"), (1e-9, "n"), (1e-12, "p")]


def fmt(v, unit: str = "", digits: int = 3) -> str:
    """Readable number: 0.000459 J -> '459 µJ'; None -> 'unavailable'."""
    if v is None:
        return "unavailable"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, str):
        return v
    if isinstance(v, int) and not unit:
        return f"{v:,}"
    if unit and v != 0 and abs(v) < 1000:
        for scale, p in _PREFIX:
            if abs(v) >= scale:
                return f"{v / scale:.{digits}g} {p}{unit}"
        return f"{v / 1e-12:.{digits}g} p{unit}"
    return f"{v:.{digits}g}" + (f" {unit}" if unit else "")


def _tables(report: dict) -> list[tuple[str, str, list[str], list[list[str]]]]:
    """(id, title, header, rows) of every table of the report."""
    out = []
    if report.get("stages"):
        out.append(("stages", "Stages", ["stage", "metric", "value", "drop", "kind"],
                    [[s["name"], s["metric"], fmt(s["value"]), fmt(s.get("drop")), s["kind"]]
                     for s in report["stages"]]))
    c = report.get("chip")
    if c:
        mem = c.get("memory_max_bytes")
        rows = [["PEs", fmt(c["pes"])], ["chips", fmt(c["chips"])],
                ["memory, largest PE", f"{mem / 1024:.1f} kB" if mem else "unknown"],
                ["operating point", c["operating_point"]], ["timesteps", fmt(c["timesteps"])],
                ["tick", fmt(c["tick_s"], "s")], ["real time met", fmt(c.get("realtime"))],
                ["latency per inference", fmt(c["latency_s"], "s")],
                ["average power", fmt(c["power_w"], "W")],
                ["energy per inference", fmt(c["energy_j"], "J")],
                ["of which base (asleep x time)", fmt(c.get("base_j"), "J")],
                ["of which dynamic", fmt(c.get("dynamic_j"), "J")], ["kind", c["kind"]]]
        out.append(("chip", "SpiNNaker2 (modelled from the emulator's counters)",
                    ["quantity", "value"], rows))
        per = c.get("per_population") or {}
        if per:
            rows = [[n, fmt(p["pes"]), fmt(p["neurons"]), fmt(float(p["busy_cycles"])),
                     fmt(p["energy_j"], "J"), fmt(p.get("base_j"), "J"),
                     fmt(p["dynamic_j"], "J")] for n, p in per.items()]
            if c.get("chip_base_j") is not None:  # the rows add up to the chip's energy
                rows += [["chip base (all PEs off, x time)", "", "", "",
                          fmt(c["chip_base_j"], "J"), fmt(c["chip_base_j"], "J"), fmt(0.0, "J")],
                         ["total", fmt(c["pes"]), "", "", fmt(c["energy_j"], "J"),
                          fmt(c.get("base_j"), "J"), fmt(c.get("dynamic_j"), "J")]]
            out.append(("populations", "Per population (modelled)",
                        ["population", "PEs", "neurons", "busy cycles", "energy", "base",
                         "dynamic"], rows))
    if report.get("baselines"):
        out.append(("baselines", "Baselines and references",
                    ["device", "name", "latency", "throughput", "energy per inference",
                     "energy covers", "workload", "kind", "note"],
                    [[b["device"], b.get("device_name", ""), fmt(b.get("latency_s"), "s"),
                      fmt(b.get("throughput_per_s"), "/s") if b.get("throughput_per_s")
                      else "", fmt(b.get("energy_j"), "J"), b.get("energy_basis") or "total",
                      b.get("workload") or "same network, measured here"
                      if b.get("compared", True) else b.get("workload") or "",
                      b["kind"], (b.get("energy_note") or b.get("note") or "")
                      + ("" if b.get("compared", True) else
                         " (other workload: a reference, no ratio)")]
                     for b in report["baselines"]]))
    if report.get("ratios"):
        out.append(("ratios", "Chip vs baseline on the same workload (baseline / chip: > 1 "
                    "means the chip wins)", ["baseline", "kind", "energy basis", "energy",
                                             "latency"],
                    [[r["baseline"], r["baseline_kind"], r.get("basis", "total"),
                      "unavailable" if r["energy_x"] is None else f"{r['energy_x']:.3g}x",
                      "unavailable" if r["latency_x"] is None else f"{r['latency_x']:.3g}x"]
                     for r in report["ratios"]]))
    return out


def to_markdown(report: dict, plot_files: dict[str, str] | None = None) -> str:
    lines = [f"# spinnq report: {report.get('task', '?')}", ""]
    if report.get("created"):
        lines += [f"Created {report['created']}. Chip figures are *modelled*, CPU/GPU figures "
                  "*measured* on this machine, reference rows *published*.", ""]
    for _, title, head, rows in _tables(report):
        lines += [f"## {title}", "", "| " + " | ".join(head) + " |",
                  "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(str(c).replace("|", "/") for c in r) + " |" for r in rows]
        lines.append("")
    for n in report.get("notes", []):
        lines.append(f"- {n}")
    for name, rel in (plot_files or {}).items():
        lines += ["", f"## {PLOT_TITLES.get(name, name)}", "", f"![{name}]({rel})"]
    return "\n".join(lines) + "\n"


_CSS = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1000px;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.5em}td,th{border:1px solid #ccc;
padding:3px 8px;font-size:14px;text-align:left}th{background:#f0f4f8}
img{max-width:100%;border:1px solid #eee}h1{font-size:24px}h2{font-size:18px;margin-top:1.5em}
.kind{color:#666;font-size:13px}"""


def to_html(report: dict, plots: dict[str, bytes] | None = None) -> str:
    e = html.escape
    parts = ["<!DOCTYPE html>", "<html><head><meta charset='utf-8'>",
             f"<title>spinnq report: {e(str(report.get('task', '?')))}</title>",
             f"<style>{_CSS}</style></head><body>",
             f"<h1>spinnq report: {e(str(report.get('task', '?')))}</h1>",
             "<p class='kind'>Chip figures are <b>modelled</b> (emulator counters and published "
             "chip measurements); CPU/GPU figures are <b>measured</b> on this machine; reference "
             f"rows are <b>published</b>. {e(str(report.get('created', '')))}</p>"]
    for tid, title, head, rows in _tables(report):
        parts.append(f"<h2>{e(title)}</h2><table id='{tid}'><tr>"
                     + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr>")
        parts += ["<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in r) + "</tr>" for r in rows]
        parts.append("</table>")
    if report.get("notes"):
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{e(n)}</li>" for n in report["notes"])
                     + "</ul>")
    for name, png in (plots or {}).items():
        b64 = base64.b64encode(png).decode("ascii")
        parts.append(f"<h2>{e(PLOT_TITLES.get(name, name))}</h2>"
                     f"<img id='plot-{e(name)}' alt='{e(name)}' "
                     f"src='data:image/png;base64,{b64}'>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(run_dir: Path | str, report: dict, plots: dict[str, bytes] | None = None
                 ) -> dict[str, Path]:
    """Write report.json, report.md, report.html and plots/<name>.png into `run_dir`."""
    run_dir = Path(run_dir)
    plots = {k: v for k, v in (plots or {}).items() if v}
    paths: dict[str, Path] = {}
    for name, png in plots.items():
        paths[name] = atomic_write(run_dir / "plots" / f"{name}.png", png)
    data = _jsonable(report)
    paths["json"] = atomic_write(run_dir / "report.json",
                                  json.dumps(data, indent=2, allow_nan=False).encode())
    paths["md"] = atomic_write(run_dir / "report.md", to_markdown(
        data, {n: f"plots/{n}.png" for n in plots}).encode())
    paths["html"] = atomic_write(run_dir / "report.html", to_html(data, plots).encode())
    return paths
