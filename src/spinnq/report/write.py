"""Write a report dict as report.json, report.md and a self-contained report.html.

    write_report(run_dir, report, plots=None) -> {"json": path, "md": path, "html": path,
                                                   "<plot name>": path of plots/<name>.png}

Each file is written to a temporary name in the same folder and renamed: a reader sees the
old complete file or the new one, never half of one. The HTML embeds its PNGs (base64), so
the single file can be mailed or opened anywhere.

report.md and report.html are the same document: `content(report)` builds it once (blocks:
paragraph, table, list, image) and `to_markdown` / `to_html` only render those blocks, so
a table or line can never be in one and missing from the other. Task-specific text goes in
the report dict (`sections`: [{"title", "text"}], extra stage columns), never appended to
one file afterwards.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

from spinnq.errors import one_line
from spinnq.files import atomic_write, jsonable, write_json

PLOT_TITLES = {
    "cost_comparison": "Energy and latency per inference: chip vs CPU/GPU (log scale)",
    "energy_per_population": "Energy per population (modelled)",
    "spike_raster": "Spike raster of one sample on the emulated chip",
    "pe_map": "PEs of the chip, coloured by population",
    "training_curves": "Training curves",
}


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


# Optional per-stage columns (closed-loop tasks): key, header, format.
STAGE_EXTRA = (("std_return", "std", lambda v: f"{v:.1f}"),
               ("min_return", "min", lambda v: f"{v:.0f}"),
               ("actions_equal_float", "actions = float", lambda v: f"{v:.1%}"),
               ("episodes", "episodes", str))

KINDS_LINE = ("Labels: *measured* = run here (accuracy/return of a software stage, CPU/GPU "
              "time and power); *emulated* = the compiled program on spinnq's bit-exact "
              "SpiNNaker2 emulator (its accuracy/return is what the chip computes); "
              "*modelled* = chip latency, power and energy from the emulator's activity "
              "counters; *published* = figures from papers.")
DROP_LINE = ("drop = reference value - this stage's value, in the metric's units: positive "
             "means this stage is worse than its reference (the first stage of the same metric "
             "unless the row says otherwise), negative means better.")


def content(report: dict, plots: list[str] | tuple[str, ...] = ()) -> list[dict]:
    """The report as blocks, rendered by `to_markdown` and `to_html` alike:
    {"kind": "title"|"para"|"table"|"list"|"image", ...}."""
    blocks: list[dict] = [{"kind": "title", "text": f"spinnq report: {report.get('task', '?')}"}]
    if report.get("created"):
        blocks.append({"kind": "para", "text": f"Created {report['created']}."})
    blocks.append({"kind": "para", "text": KINDS_LINE, "cls": "kind"})
    for tid, title, head, rows in _tables(report):
        blocks.append({"kind": "table", "id": tid, "title": title, "head": head, "rows": rows})
        if tid == "stages":
            blocks.append({"kind": "para", "text": DROP_LINE, "cls": "kind"})
    for sec in report.get("sections") or ():
        blocks.append({"kind": "para", "title": sec.get("title"), "text": sec["text"]})
    if report.get("notes"):
        blocks.append({"kind": "list", "title": "Notes", "items": list(report["notes"])})
    for name in plots:
        blocks.append({"kind": "image", "name": name, "title": PLOT_TITLES.get(name, name)})
    return blocks


def _x(x: float | None, rng: list | None = None) -> str:
    """A ratio with its range, e.g. "3.1x (2.5-4x)"; "unavailable" when None."""
    if x is None:
        return "unavailable"
    if rng and None not in rng:
        return f"{x:.3g}x ({rng[0]:.3g}-{rng[1]:.3g}x)"
    return f"{x:.3g}x"


def _pct(v: float | None) -> str:
    return "" if v is None else f"{v:.1%}"


def _activity_table(act: dict) -> list[tuple[str, str, list[str], list[list[str]]]]:
    """NeuroBench's activity metrics per population (s2/activity.py), when the cost has them."""
    per = act.get("per_population") or {}
    if not per:
        return []
    rows = [[n, fmt(p["spikes"]), _pct(p.get("activation_sparsity")), fmt(p["effective_acs"]),
             fmt(p.get("dense_synops"))] for n, p in per.items()]
    t = act.get("total") or {}
    rows.append(["total (sparsity: every population but the input)", "",
                 _pct(t.get("activation_sparsity")), fmt(t.get("effective_acs")),
                 fmt(t.get("dense_synops"))])
    return [("activity", f"Activity per inference ({act.get('kind', 'emulated')}; "
             f"{act.get('source', '')})", ["population", "spikes", "activation sparsity",
                                           "effective ACs", "dense synaptic ops"], rows)]


def _tables(report: dict) -> list[tuple[str, str, list[str], list[list[str]]]]:
    """(id, title, header, rows) of every table of the report."""
    out = []
    if report.get("stages"):
        extra = [(k, h, f) for k, h, f in STAGE_EXTRA
                 if any(s.get(k) is not None for s in report["stages"])]
        out.append(("stages", "Stages", ["stage", "metric", "value", "drop", "kind"]
                    + [h for _, h, _ in extra],
                    [[s["name"], s["metric"], fmt(s["value"]), fmt(s.get("drop")), s["kind"]]
                     + ["" if s.get(k) is None else f(s[k]) for k, _, f in extra]
                     for s in report["stages"]]))
    c = report.get("chip")
    if c:
        mem = c.get("memory_max_bytes")
        rows = [["PEs", fmt(c["pes"])], ["chips", fmt(c["chips"])],
                ["memory, largest PE", f"{mem / 1024:.1f} kB" if mem else "unknown"],
                ["operating point", c["operating_point"]], ["timesteps", fmt(c["timesteps"])],
                ["tick", fmt(c["tick_s"], "s")],
                ["requested tick feasible", fmt(c.get("realtime"))],
                ["latency per inference", fmt(c["latency_s"], "s")],
                ["average power", fmt(c["power_w"], "W")],
                ["energy per inference", fmt(c["energy_j"], "J")],
                ["energy range (every constant at the low / high end of its sourced range)",
                 f"{fmt(c.get('energy_low_j'), 'J')} - {fmt(c.get('energy_high_j'), 'J')}"],
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
        out += _activity_table(c.get("activity") or {})
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
                    "means the chip wins; energy only on the same basis)",
                    ["baseline", "kind", "energy basis", "energy", "energy, total / total",
                     "latency"],
                    [[r["baseline"], r["baseline_kind"], r.get("basis", "total"),
                      _x(r.get("energy_x"), r.get("energy_x_range")),
                      _x(r.get("energy_total_x"), r.get("energy_total_x_range"))
                      if "energy_total_x" in r else "",
                      "unavailable" if r["latency_x"] is None else f"{r['latency_x']:.3g}x"]
                     for r in report["ratios"]]))
    return out


def md_text(text: object, emphasis: bool = False) -> str:
    """Text for report.md, escaped as report.html escapes it: names from a user's files
    (nodes, graphs, stages) can hold `<img ...>`, links or table bars, which a Markdown
    viewer would render. HTML special characters become entities, Markdown's (backslash,
    backtick, _ [ ] and, unless `emphasis` keeps spinnq's own *labels*, *) are
    backslash-escaped, '|' becomes '/', line breaks spaces (one table row, one line) and
    other control characters (terminal escapes) visible escapes."""
    t = html.escape(one_line(" ".join(str(text).splitlines())), quote=False).replace("|", "/")
    return re.sub(r"([\\`_\[\]])" if emphasis else r"([\\`*_\[\]])", r"\\\1", t)


def to_markdown(report: dict, plot_files: dict[str, str] | None = None) -> str:
    """report.md: `content` as Markdown; images link to `plot_files` (name -> relative path).
    Every text is escaped (`md_text`): names from user files never become markup."""
    files = plot_files or {}
    lines: list[str] = []
    for b in content(report, list(files)):
        k = b["kind"]
        if k == "title":
            lines += [f"# {md_text(b['text'])}", ""]
        elif k == "para":
            if b.get("title"):
                lines += [f"## {md_text(b['title'])}", ""]
            lines += [md_text(b["text"], emphasis=True), ""]
        elif k == "table":
            lines += [f"## {md_text(b['title'])}", "",
                      "| " + " | ".join(md_text(h) for h in b["head"]) + " |",
                      "|" + "---|" * len(b["head"])]
            lines += ["| " + " | ".join(md_text(c) for c in r) + " |" for r in b["rows"]]
            lines.append("")
        elif k == "list":
            lines += [f"## {md_text(b['title'])}", ""] + [f"- {md_text(x)}"
                                                          for x in b["items"]] + [""]
        elif k == "image":
            lines += [f"## {b['title']}", "", f"![{b['name']}]({files[b['name']]})", ""]
    return "\n".join(lines).rstrip() + "\n"


_CSS = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1000px;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.5em}td,th{border:1px solid #ccc;
padding:3px 8px;font-size:14px;text-align:left}th{background:#f0f4f8}
img{max-width:100%;border:1px solid #eee}h1{font-size:24px}h2{font-size:18px;margin-top:1.5em}
.kind{color:#666;font-size:13px}"""


def to_html(report: dict, plots: dict[str, bytes] | None = None) -> str:
    """report.html: `content` as one self-contained page (PNGs embedded as base64)."""
    e = html.escape
    plots = plots or {}
    parts = ["<!DOCTYPE html>", "<html><head><meta charset='utf-8'>",
             f"<title>spinnq report: {e(str(report.get('task', '?')))}</title>",
             f"<style>{_CSS}</style></head><body>"]
    for b in content(report, list(plots)):
        k = b["kind"]
        if k == "title":
            parts.append(f"<h1>{e(b['text'])}</h1>")
        elif k == "para":
            if b.get("title"):
                parts.append(f"<h2>{e(b['title'])}</h2>")
            cls = f" class='{b['cls']}'" if b.get("cls") else ""
            parts.append(f"<p{cls}>{_inline(b['text'])}</p>")
        elif k == "table":
            parts.append(f"<h2>{e(b['title'])}</h2><table id='{b['id']}'><tr>"
                         + "".join(f"<th>{e(h)}</th>" for h in b["head"]) + "</tr>")
            parts += ["<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in r) + "</tr>"
                      for r in b["rows"]]
            parts.append("</table>")
        elif k == "list":
            parts.append(f"<h2>{e(b['title'])}</h2><ul>"
                         + "".join(f"<li>{e(x)}</li>" for x in b["items"]) + "</ul>")
        elif k == "image":
            b64 = base64.b64encode(plots[b["name"]]).decode("ascii")
            parts.append(f"<h2>{e(b['title'])}</h2><img id='plot-{e(b['name'])}' "
                         f"alt='{e(b['name'])}' src='data:image/png;base64,{b64}'>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _inline(text: str) -> str:
    """Markdown's *emphasis* as <i>, everything else escaped."""
    return re.sub(r"\*([^*]+)\*", r"<i>\1</i>", html.escape(text))


def write_report(run_dir: Path | str, report: dict, plots: dict[str, bytes] | None = None
                 ) -> dict[str, Path]:
    """Write report.json, report.md, report.html and plots/<name>.png into `run_dir`."""
    run_dir = Path(run_dir)
    plots = {k: v for k, v in (plots or {}).items() if v}
    paths: dict[str, Path] = {}
    for name, png in plots.items():
        paths[name] = atomic_write(run_dir / "plots" / f"{name}.png", png)
    data = jsonable(report)
    paths["json"] = write_json(run_dir / "report.json", data, sort_keys=False)
    paths["md"] = atomic_write(run_dir / "report.md", to_markdown(
        data, {n: f"plots/{n}.png" for n in plots}).encode())
    paths["html"] = atomic_write(run_dir / "report.html", to_html(data, plots).encode())
    return paths
