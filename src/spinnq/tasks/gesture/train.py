"""Training of the gesture SNN (float P-SNN and QAT Q-SNN alike): MSE on output spike counts,
Adam, a checkpoint per epoch (atomic; `--resume` continues from it with the same random
streams), CSV/TensorBoard logs, a rich progress bar. The weights with the best validation
accuracy are kept.

Loss as in the seed (snnTorch's `mse_count_loss`): the target count of the right class is
`correct_rate * T` spikes, of every other class `incorrect_rate * T`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from spinnq.config import DEVICES, resolve_device
from spinnq.helpers import progress
from spinnq.nn import SpikingSequential
from spinnq.settings import Limit
from spinnq.tasks.common import (
    MetricLogger,
    RunDir,
    load_checkpoint,
    load_state_dict,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from spinnq.tasks.gesture.data import Frames

train_device = resolve_device  # the trainer's `device` setting, resolved in spinnq.config


@dataclass(frozen=True)
class TrainConfig:
    LIMITS: ClassVar[dict[str, Limit]] = {
        "epochs": Limit(0, 10_000), "batch": Limit(1, 1 << 16), "lr": Limit(0, 1, lo_open=True),
        "lr_final": Limit(0, 1, lo_open=True), "correct_rate": Limit(0, 1),
        "incorrect_rate": Limit(0, 1), "eval_batch": Limit(1, 1 << 16),
        "device": Limit(choices=DEVICES)}

    epochs: int = 12
    batch: int = 32
    lr: float = 4e-3
    lr_final: float = 4e-4  # cosine decay to this
    correct_rate: float = 0.8
    incorrect_rate: float = 0.2
    eval_batch: int = 128
    device: str = "cpu"  # or cuda (where torch sees a GPU): training only; the chip is emulated


def count_targets(y: torch.Tensor, steps: int, n_classes: int, cfg: TrainConfig) -> torch.Tensor:
    t = torch.full((len(y), n_classes), cfg.incorrect_rate * steps)
    t[torch.arange(len(y)), y] = cfg.correct_rate * steps
    return t


def as_input(x: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """Frames as float32 on `device` (converted there: bytes cross to a GPU, not floats)."""
    return torch.from_numpy(np.ascontiguousarray(x)).to(device).float()


def model_input(model: nn.Module, x: np.ndarray, device: torch.device | str) -> torch.Tensor:
    """Frames for `model` on `device`: as stored (uint8) for a `SpikingSequential`, which
    makes floats of them a time chunk at a time (a float copy of a 600-step batch of 32 is
    157 MB), else as float32 (`as_input`)."""
    if isinstance(model, SpikingSequential):
        return torch.from_numpy(np.ascontiguousarray(x)).to(device)
    return as_input(x, device)


@torch.no_grad()
def spike_counts(model: nn.Module, f: Frames, batch: int = 128) -> torch.Tensor:
    """Output spike counts (N, classes, on the CPU) of the torch model (its own forward on
    the model's device, no chip)."""
    model.eval()
    dev = next(model.parameters()).device
    return torch.cat([model(model_input(model, f.x[i:i + batch], dev)).sum(1).cpu()
                      for i in range(0, len(f), batch)]) if len(f) else torch.zeros(0, 11)


def accuracy(counts: torch.Tensor | np.ndarray, y: np.ndarray) -> float:
    """Argmax of the counts; ties go to the lowest class index (as torch.argmax)."""
    c = torch.as_tensor(counts)
    return float((c.argmax(1).numpy() == np.asarray(y)).mean()) if len(y) else float("nan")


def train(model: nn.Module, data: dict[str, Frames], cfg: TrainConfig, run: RunDir, name: str,
          resume: bool = False, quiet: bool = False) -> dict:
    """Train `model` in place; returns {"best_val": acc, "epochs": n, "history": [...]}."""
    tr, va = data["train"], data["val"]
    steps = tr.x.shape[1]
    dev = train_device(cfg.device)
    model.to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(cfg.epochs, 1), cfg.lr_final)
    log = MetricLogger(run.path, name)
    start, best, best_state, history = 0, -1.0, None, []
    ckpt = run.ckpt(name)
    if resume and ckpt.exists():
        st = load_checkpoint(ckpt, ("model", "opt", "sched", "epoch", "best", "rng"))
        load_state_dict(model, st["model"], file=str(ckpt))
        opt.load_state_dict(st["opt"])
        sched.load_state_dict(st["sched"])
        set_rng_state(st["rng"])
        start, best, best_state = int(st["epoch"]) + 1, float(st["best"]), st.get("best_model")
        history = list(st.get("history", []))
        log.truncate(int(st["epoch"]))
    n_batches = (len(tr) + cfg.batch - 1) // cfg.batch
    with progress(disable=quiet) as bar:
        task = bar.add_task(f"train {name}", total=cfg.epochs * n_batches,
                            completed=start * n_batches, info="")
        for ep in range(start, cfg.epochs):
            model.train()
            perm = torch.randperm(len(tr))
            tot, correct = 0.0, 0
            for i in range(0, len(tr), cfg.batch):
                idx = perm[i:i + cfg.batch].numpy()
                x, y = model_input(model, tr.x[idx], dev), torch.from_numpy(tr.y[idx]).to(dev)
                counts = model(x).sum(1)
                loss = F.mse_loss(counts, count_targets(y, steps, counts.shape[1], cfg).to(dev))
                opt.zero_grad()
                loss.backward()
                opt.step()
                tot += loss.item() * len(idx)
                correct += int((counts.argmax(1) == y).sum())
                bar.update(task, advance=1)
            sched.step()
            val_acc = accuracy(spike_counts(model, va, cfg.eval_batch), va.y)
            row = {"loss": tot / len(tr), "train_acc": correct / len(tr), "val_acc": val_acc,
                   "lr": opt.param_groups[0]["lr"]}
            history.append({"epoch": ep, **row})
            log.log(ep, **row)
            bar.update(task, info=f"val {val_acc:.3f}")
            if val_acc > best:
                best = val_acc
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            save_checkpoint(ckpt, {"model": model.state_dict(), "opt": opt.state_dict(),
                                   "sched": sched.state_dict(), "epoch": ep, "best": best,
                                   "best_model": best_state, "rng": rng_state(),
                                   "history": history})
    log.close()
    if isinstance(model, SpikingSequential):
        model.free_chunk_memory()  # the batches' kept memory (1 GB for the seed preset)
    if best_state is not None:
        load_state_dict(model, best_state, file=str(ckpt))
    model.to("cpu")  # export and the chip stages read CPU tensors
    return {"best_val": best, "epochs": cfg.epochs, "history": history}
