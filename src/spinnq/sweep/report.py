"""The sweep's report: the front (metric vs energy per inference, latency as colour, the
default and the seed paper's configuration marked), the energy saved at a small metric loss,
the pick under a budget, and the tables. report.md beside a self-contained report.html."""

from __future__ import annotations

import base64
import html
from pathlib import Path

import numpy as np
from matplotlib import colors
from matplotlib.figure import Figure

from spinnq.files import atomic_write
from spinnq.report.plots import png
from spinnq.report.write import fmt
from spinnq.sweep.results import ok, pareto
from spinnq.sweep.space import KEYS


def label(rec: dict) -> str:
    s = rec["settings"]
    return ", ".join(f"{k}={s[k]}" for k in KEYS)


def front_plot(records: list[dict], metric: str, marks: dict[str, dict | None]) -> bytes:
    """Metric against energy per inference (log), latency as colour; the front as a step line;
    `marks` (name -> record) drawn as labelled outlines."""
    good = [r for r in records if ok(r, metric)]
    fig = Figure(figsize=(7.5, 4.8))
    ax = fig.add_subplot()
    if good:
        e = np.array([r["energy_j"] * 1e3 for r in good])
        m = np.array([r[metric] for r in good]) * (100 if metric == "accuracy" else 1)
        lat = np.array([r["latency_s"] * 1e3 for r in good])
        norm = colors.LogNorm(vmin=lat.min(), vmax=max(lat.max(), lat.min() * 1.0001))
        sc = ax.scatter(e, m, c=lat, cmap="viridis", norm=norm, s=30, zorder=3)
        fig.colorbar(sc, ax=ax, label="latency per inference (ms, modelled)")
        front = pareto(good, metric)
        fe = [r["energy_j"] * 1e3 for r in front]
        fm = [r[metric] * (100 if metric == "accuracy" else 1) for r in front]
        ax.step(fe, fm, where="post", color="#d62728", lw=1.2, label="Pareto front", zorder=2)
        styles = {"default": ("*", "#d62728", 260), "seed": ("D", "#1f77b4", 140),
                  "best": ("o", "#2ca02c", 200)}
        for name, rec in marks.items():
            if rec is None or not ok(rec, metric):
                continue
            mk, col, size = styles.get(name, ("s", "k", 120))
            ax.scatter([rec["energy_j"] * 1e3],
                       [rec[metric] * (100 if metric == "accuracy" else 1)],
                       marker=mk, s=size, facecolors="none", edgecolors=col, linewidths=2,
                       label=f"{name} configuration", zorder=4)
        ax.set_xscale("log")
        ax.legend(loc="best", fontsize=8)
    ax.set_xlabel("energy per inference (mJ, modelled)")
    ax.set_ylabel("accuracy on chip (%, emulated)" if metric == "accuracy"
                  else "mean return on chip (emulated)")
    ax.grid(alpha=0.3)
    return png(fig)


def _cells(rec: dict, metric: str) -> list[str]:
    s = rec["settings"]
    m = rec.get(metric)
    mv = "" if m is None or not ok(rec, metric) else (
        f"{m:.2%}" if metric == "accuracy" else f"{m:.1f}")
    return [*(str(s[k]) for k in KEYS), mv,
            "" if not ok(rec, metric) else fmt(rec["energy_j"], "J"),
            "" if not ok(rec, metric) or rec.get("energy_low_j") in (None, "") else
            f"{fmt(rec['energy_low_j'], 'J')} - {fmt(rec['energy_high_j'], 'J')}",
            "" if not ok(rec, metric) else fmt(rec["dynamic_j"], "J"),
            "" if not ok(rec, metric) else fmt(rec["latency_s"], "s"),
            str(rec.get("pes", "")), str(rec.get("chips", "")), rec.get("error", "")]


def _head(metric: str) -> list[str]:
    return [*KEYS, metric, "energy", "energy range", "dynamic", "latency", "PEs", "chips",
            "error"]


def _md_table(rows: list[dict], metric: str) -> list[str]:
    h = _head(metric)
    out = ["| " + " | ".join(h) + " |", "|" + "---|" * len(h)]
    out += ["| " + " | ".join(_cells(r, metric)) + " |" for r in rows]
    return out


def summary_lines(info: dict, metric: str) -> list[str]:
    """The sentences of the report: energy saved against the default and the seed paper's
    configuration at the tolerance, and the budget pick."""
    lines = []
    unit = "pt" if metric == "accuracy" else "return"
    scale = 100 if metric == "accuracy" else 1

    def val(r: dict) -> str:
        return f"{r[metric]:.2%}" if metric == "accuracy" else f"{r[metric]:.1f}"
    for name in ("default", "seed"):
        sv = info.get(f"saved_vs_{name}")
        if sv is None:
            lines.append(f"No {name} configuration result to compare with.")
            continue
        lines.append(
            f"Against the {name} configuration ({label(sv['reference'])}; "
            f"{metric} {val(sv['reference'])}, {fmt(sv['reference']['energy_j'], 'J')}): "
            f"{sv['saved']:.1%} less energy per inference (modelled) at "
            f"{sv['metric_change'] * scale:+.3g} {unit} (tolerance "
            f"{sv['tolerance'] * scale:.3g} {unit}) with {label(sv['pick'])} "
            f"({fmt(sv['pick']['energy_j'], 'J')}).")
    kept = info.get("pareto_order_kept") or {}
    if kept and None not in kept.values():
        moved = [k for k, v in kept.items() if not v]
        lines.append(f"{len(kept) - len(moved)} of {len(kept)} front points keep their energy "
                     "order with every energy constant at the low or the high end of its "
                     "sourced range" + (f"; these change places: {', '.join(moved)}."
                                        if moved else "."))
    if info.get("budget"):
        b = info.get("best")
        lines.append(f"Budget ({info['budget']}): " + (
            f"best trial {label(b)}: {metric} {val(b)}, "
            f"{fmt(b['energy_j'], 'J')}, {fmt(b['latency_s'], 's')}; graph in best.nir, "
            "commands in best.md." if b else "no trial meets it."))
    return lines


def write(folder: str | Path, title: str, records: list[dict], metric: str, info: dict
          ) -> dict[str, Path]:
    """report.md, report.html and plots/front.png in `folder`."""
    folder = Path(folder)
    marks = {"default": info.get("default"), "seed": info.get("seed"), "best": info.get("best")}
    plot = front_plot(records, metric, marks)
    front = pareto(records, metric)
    n_ok = sum(ok(r, metric) for r in records)
    intro = (f"{len(records)} trials ({n_ok} with a result, {len(records) - n_ok} failed); "
             f"{len(front)} on the Pareto front (higher {metric}, lower energy). {metric} is "
             "emulated on the bit-exact chip model; energy and latency per inference are "
             "modelled (spinnq.s2.energy). timesteps 0: every step of the data (or the task's "
             "own T); neurons_per_pe 0: the chip model's default.")
    summary = summary_lines(info, metric)
    intro = " ".join([intro, *info.get("notes", [])])
    md = [f"# spinnq sweep: {title}", "", intro, "", *[f"- {s}" for s in summary], "",
          "![front](plots/front.png)", "", "## Pareto front", "", *_md_table(front, metric),
          "", "## All trials", "", *_md_table(records, metric), ""]
    paths = {"front": atomic_write(folder / "plots" / "front.png", plot)}
    paths["md"] = atomic_write(folder / "report.md", "\n".join(md))
    e = html.escape

    def table(rows: list[dict], tid: str) -> str:
        return (f"<table id='{tid}'><tr>" + "".join(f"<th>{e(h)}</th>" for h in _head(metric))
                + "</tr>" + "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in
                                                     _cells(r, metric)) + "</tr>" for r in rows)
                + "</table>")

    b64 = base64.b64encode(plot).decode("ascii")
    page = ["<!DOCTYPE html><html><head><meta charset='utf-8'>",
            f"<title>spinnq sweep: {e(title)}</title><style>body{{font-family:sans-serif;"
            "margin:2em;max-width:1100px}table{border-collapse:collapse;font-size:13px}"
            "td,th{border:1px solid #ccc;padding:2px 6px}th{background:#f0f4f8}"
            "img{max-width:100%}</style></head><body>",
            f"<h1>spinnq sweep: {e(title)}</h1><p>{e(intro)}</p><ul>",
            *[f"<li>{e(s)}</li>" for s in summary], "</ul>",
            f"<img id='plot-front' alt='front' src='data:image/png;base64,{b64}'>",
            "<h2>Pareto front</h2>", table(front, "pareto"),
            "<h2>All trials</h2>", table(records, "trials"), "</body></html>"]
    paths["html"] = atomic_write(folder / "report.html", "\n".join(page))
    return paths
