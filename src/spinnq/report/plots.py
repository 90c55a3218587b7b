"""The report's plots as PNG bytes (matplotlib's object API on Agg: no pyplot, no global
backend, safe in threads and on machines without a display).

    cost_comparison(report) -> png          energy and latency per inference, log scale
    energy_per_population(chip_or_cost)     base and dynamic energy of each population
    spike_raster({pop: (T, *shape)})        one sample's spikes, populations stacked
    pe_map(placement)                       every chip's PEs coloured by population
    training_curves(csv_path)               every numeric column against the first
    standard_plots(report, cost=, placement=, spikes=, training_csv=) -> {name: png}
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from spinnq.s2 import chip as chip_consts

KIND_HATCH = {"modelled": "", "measured": "//", "published": ".."}
KIND_COLOR = {"modelled": "#2a7ab0", "measured": "#d9822b", "published": "#8a8a8a"}


def png(fig: Figure) -> bytes:
    """A figure as PNG bytes (Agg canvas: no display, no global backend)."""
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return buf.getvalue()


_png = png


def bar_rows(report: dict) -> list[dict]:
    """Bars of the cost plot: the chip (with its energy range), then each baseline, labelled
    with its basis when not total and marked when it ran another workload."""
    rows = []
    if report.get("chip"):
        c = report["chip"]
        rows.append({"label": f"SpiNNaker2 ({c['operating_point']})", "kind": "modelled",
                     "energy_j": c["energy_j"], "latency_s": c["latency_s"],
                     "energy_range": (c.get("energy_low_j"), c.get("energy_high_j")),
                     "other": False})
    for b in report.get("baselines", []):
        tags = [] if b["kind"] == "measured" else ["pub."]
        basis = b.get("energy_basis") or "total"
        if basis != "total":
            tags.append(basis if basis == "dynamic" else f"basis {basis}")
        other = not b.get("compared", True)
        label = b["device"] + (f" ({', '.join(tags)})" if tags else "")
        rows.append({"label": label + ("\n[other workload]" if other else ""),
                     "kind": b["kind"], "energy_j": b.get("energy_j"),
                     "latency_s": b.get("latency_s"), "other": other})
    return rows


def cost_comparison(report: dict) -> bytes:
    """Energy and latency per inference, chip vs baselines, log scale; "n/a" where unknown;
    the chip's energy bar carries its range; rows of other workloads are faded, dashed and
    labelled "[other workload]" (references, not comparisons)."""
    rows = bar_rows(report)
    fig = Figure(figsize=(9, 3.6))
    for ax, key, title, unit in (
            (fig.add_subplot(1, 2, 1), "energy_j", "Energy per inference", "energy (J, log)"),
            (fig.add_subplot(1, 2, 2), "latency_s", "Latency per inference", "latency (s, log)")):
        known = [r[key] for r in rows if r[key] and r[key] > 0]
        floor = min(known) / 10 if known else 1e-6
        for i, r in enumerate(rows):
            v = r[key]
            if v and v > 0:
                ax.bar(i, v, color=KIND_COLOR[r["kind"]], hatch=KIND_HATCH[r["kind"]],
                       edgecolor="black", linewidth=0.8 if r["other"] else 0.5,
                       linestyle="--" if r["other"] else "-", alpha=0.45 if r["other"] else 1)
                lo, hi = r.get("energy_range") or (None, None)
                if key == "energy_j" and lo and hi:
                    ax.errorbar(i, v, yerr=[[v - lo], [hi - v]], color="black", capsize=3,
                                linewidth=0.8)
                ax.text(i, v, f"{v:.3g}", ha="center", va="bottom", fontsize=7)
            else:
                ax.text(i, floor * 1.5, "n/a", ha="center", va="bottom", fontsize=8)
        ax.set_yscale("log")
        ax.set_ylim(bottom=floor)
        ax.set_xlim(-0.6, len(rows) - 0.4)
        ax.set_xticks(range(len(rows)), [r["label"] for r in rows], rotation=20, ha="right",
                      fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(unit, fontsize=8)
    handles = [Patch(facecolor=KIND_COLOR[k], hatch=KIND_HATCH[k], label=k, edgecolor="black",
                     linewidth=0.5) for k in KIND_COLOR]
    handles.append(Patch(facecolor="white", edgecolor="black", linestyle="--",
                         label="other workload (reference)"))
    # above the axes (outside them), so it never covers a bar
    fig.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=4,
               fontsize=8, frameon=False)
    return _png(fig)


def energy_per_population(cost) -> bytes:
    """Per population: dynamic energy and its PEs' sleep energy, per inference (modelled)."""
    per = cost.per_population if hasattr(cost, "per_population") else cost["per_population"]
    names = list(per)
    dyn = np.array([per[n]["dynamic_j"] for n in names])
    base = np.array([per[n]["energy_j"] for n in names]) - dyn
    fig = Figure(figsize=(7, 0.5 + 0.35 * max(len(names), 2)))
    ax = fig.add_subplot(1, 1, 1)
    y = np.arange(len(names))
    ax.barh(y, base, color="#b8cfe0", label="PEs asleep x run time")
    ax.barh(y, dyn, left=base, color="#2a7ab0", label="busy cycles and MACs")
    ax.set_yticks(y, names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("energy per inference (J, modelled)")
    ax.legend(fontsize=8, loc="lower right")
    return _png(fig)


def spike_raster(spikes: dict[str, np.ndarray], max_neurons: int = 2000,
                 source: str = "emulated chip") -> bytes:
    """Spikes of one sample, (T, *shape) per population, stacked; large populations are
    thinned to `max_neurons` rows (every k-th neuron) and say so. `source` says whose spikes
    they are ("emulated chip" or "float reference"): the two differ by quantisation."""
    fig = Figure(figsize=(8, 4))
    ax = fig.add_subplot(1, 1, 1)
    offset, ticks = 0, []
    colors = [f"C{i}" for i in range(10)]
    mats = {}
    for name, s in spikes.items():
        a = np.asarray(s)
        a = a.reshape(a.shape[0], -1) if a.ndim > 1 else a.reshape(-1, 1)
        k = max(1, math.ceil(a.shape[1] / max_neurons))
        mats[name] = (a[:, ::k], k)
    rows = sum(a.shape[1] for a, _ in mats.values()) or 1
    size = float(np.clip(4000 / rows, 1, 40))  # visible dots for small networks too
    for i, (name, (a, k)) in enumerate(mats.items()):
        t, n = np.nonzero(a)
        ax.scatter(t, n + offset, s=size, marker="|", color=colors[i % 10], linewidths=0.8)
        ticks.append((offset + a.shape[1] / 2, name + (f" (1/{k})" if k > 1 else "")))
        offset += a.shape[1] + 2
    ax.set_yticks([p for p, _ in ticks], [n for _, n in ticks], fontsize=8)
    ax.set_xlabel("timestep")
    ax.set_ylabel("population (neurons)", fontsize=8)
    ax.set_ylim(-1, max(offset, 1))
    ax.set_title(f"Spike raster of one sample ({source})", fontsize=10)
    return _png(fig)


def pe_map(placement, cols: int = 8) -> bytes:
    """Each chip's PEs (grid of `cols` columns), coloured by the population they hold."""
    per_chip = placement.pes_per_chip or chip_consts.USABLE_PES_PER_CHIP
    rows = math.ceil(per_chip / cols)
    pops = list(dict.fromkeys(s.population for s in placement.slots))
    color = {p: i for i, p in enumerate(pops)}
    n_chips = max(placement.chips, 1)
    fig = Figure(figsize=(2.2 * min(n_chips, 6) + 1.8, 0.18 * rows + 1.2))
    from matplotlib import colormaps
    cmap = colormaps["tab20"].resampled(max(len(pops), 1))
    for c in range(min(n_chips, 6)):
        grid = np.full((rows, cols), np.nan)
        for s in placement.slots:
            if s.chip == c and s.pe < rows * cols:
                grid[s.pe // cols, s.pe % cols] = color[s.population]
        ax = fig.add_subplot(1, min(n_chips, 6), c + 1)
        ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=-0.5, vmax=len(pops) - 0.5,
                  aspect="equal", interpolation="nearest")
        ax.set_facecolor("#eeeeee")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"chip {c}", fontsize=9)
    handles = [fig.axes[0].scatter([], [], marker="s", color=cmap(color[p]), label=p)
               for p in pops]
    fig.legend(handles=handles, loc="center right", fontsize=7, frameon=False)
    fig.suptitle(f"{placement.pes} PEs on {placement.chips} chip(s)"
                 + (" (first 6 shown)" if n_chips > 6 else ""), fontsize=10)
    return _png(fig)


CURVE_LABELS = {"ret": "episode return", "length": "episode length", "epsilon": "exploration "
                "epsilon", "loss": "training loss", "episode": "episodes", "eval_mean":
                "greedy evaluation, mean return", "eval_std": "greedy evaluation, std",
                "train_acc": "training accuracy", "val_acc": "validation accuracy",
                "lr": "learning rate", "step": "environment step", "epoch": "epoch"}


def training_curves(csv_path: Path | str) -> bytes | None:
    """Every numeric column of a training CSV against its first column; None if empty."""
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return None
    cols = list(rows[0])
    x_name, ys = cols[0], []
    for c in cols[1:]:
        try:
            vals = [float(r[c]) if r[c] not in ("", None) else np.nan for r in rows]
        except ValueError:
            continue
        ys.append((c, vals))
    if not ys:
        return None
    x = [float(r[x_name]) for r in rows]
    n = len(ys)
    fig = Figure(figsize=(4 * min(n, 3), 2.8 * math.ceil(n / 3)))
    for i, (c, v) in enumerate(ys):
        ax = fig.add_subplot(math.ceil(n / 3), min(n, 3), i + 1)
        ax.plot(x, v, lw=1)
        label = CURVE_LABELS.get(c, c.replace("_", " "))
        ax.set_title(label[:1].upper() + label[1:], fontsize=9)
        ax.set_ylabel(label, fontsize=8)
        ax.set_xlabel(CURVE_LABELS.get(x_name, x_name), fontsize=8)
    fig.tight_layout()
    return _png(fig)


def standard_plots(report: dict, cost=None, placement=None, spikes=None,
                   training_csv: Path | str | None = None) -> dict[str, bytes]:
    """The report's plots from whatever is at hand (each one skipped when its input is)."""
    plots: dict[str, bytes] = {}
    if report.get("chip") or report.get("baselines"):
        plots["cost_comparison"] = cost_comparison(report)
    chip = cost if cost is not None else report.get("chip")
    if chip is not None and (getattr(chip, "per_population", None)
                             or (isinstance(chip, dict) and chip.get("per_population"))):
        plots["energy_per_population"] = energy_per_population(chip)
    if spikes:
        plots["spike_raster"] = spike_raster(spikes)
    if placement is not None:
        plots["pe_map"] = pe_map(placement)
    if training_csv is not None and Path(training_csv).exists():
        png = training_curves(training_csv)
        if png:
            plots["training_curves"] = png
    return plots
