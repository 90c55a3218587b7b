"""All settings of `spinnq run gesture`, defaults in one place; `--set key=value` edits them
(e.g. `--set train.epochs=20 --set n_train=2200 --set frames.bin_ms=10`), parsed, typed and
range-checked by `spinnq.settings` like every task's settings."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar

from spinnq.config import DEFAULT_DT, DEFAULT_SEED, PERCENTILES, REALTIME_TICK_S
from spinnq.errors import InputError
from spinnq.settings import DT, PERCENTILE, SEED, TICK_S, Limit
from spinnq.tasks.gesture.model import ModelConfig
from spinnq.tasks.gesture.synthetic import SynthConfig
from spinnq.tasks.gesture.train import TrainConfig
from spinnq.tasks.gesture.transforms import FrameConfig

PRESETS = ("fast", "seed")  # `spinnq run gesture --preset NAME`
BITS = (8, 4)  # `--set bits=4`: the 8-bit stages plus PTQ-4 and QAT-4 on chip
PLACEMENTS = ("default", "seed")  # seed: the seed paper's 147 PEs (s2.published_fit)


@dataclass(frozen=True)
class Bits4Config:
    """The 4-bit path (`bits=4`): `spinnq.quant.quantize` on the float network, PTQ-4 chosen
    on the validation split, then fine-tuning on the chip's 4-bit arithmetic (ChipNet) with
    its epoch and keep decision chosen there; the defaults are the library's (`spinnq
    quantize --finetune`'s)."""

    LIMITS: ClassVar[dict[str, Limit]] = {
        "epochs": Limit(0, 10_000), "lr": Limit(0, 10, lo_open=True),
        "batch": Limit(1, 1 << 16), "patience": Limit(0, 10_000),
        "calib_from": Limit(choices=("val", "train")),
        "percentiles": Limit(pattern=PERCENTILE.pattern, min_len=1)}

    percentiles: tuple[str, ...] = PERCENTILES  # the library's candidates (`spinnq quantize`)
    epochs: int = 10
    lr: float = 0.05  # in integer weight steps per Adam update
    batch: int = 32
    patience: int = 3  # epochs without a better validation score (0: never stop early)
    learn_thresholds: bool = False  # adaptive threshold scaling (one factor per population)
    calib_from: str = "val"  # PTQ-4's percentile chosen on the validation or training split


@dataclass(frozen=True)
class GestureConfig:
    LIMITS: ClassVar[dict[str, Limit]] = {
        "seed": SEED, "n_train": Limit(1, 1e7), "n_val": Limit(1, 1e7), "n_test": Limit(1, 1e7),
        "limit": Limit(1, 1e7), "qat_layers": Limit(choices=("brevitas", "spinnq")),
        "percentiles": Limit(pattern=PERCENTILE.pattern, min_len=1), "dt": DT,
        "tick_s": TICK_S, "chip_batch": Limit(1, 4096), "threads": Limit(1, 256),
        "preset": Limit(choices=PRESETS), "placement": Limit(choices=PLACEMENTS),
        "seed_workload_samples": Limit(0, 100_000), "bits": Limit(choices=BITS)}

    seed: int = DEFAULT_SEED
    preset: str = "fast"  # fast: 30 frames of 20 ms; seed: the seed's 600 frames of 1 ms
    data_dir: str | None = None  # None: synthetic recordings
    n_train: int = 880  # synthetic samples per split (80 / 20 / 30 per class)
    n_val: int = 220
    n_test: int = 330
    limit: int | None = None  # real data: at most this many recordings per split
    cache_dir: str = "runs/cache"  # frames cache ("" : off)
    frames: FrameConfig = field(default_factory=FrameConfig)
    synth: SynthConfig = field(default_factory=SynthConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    qat: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=3, lr=5e-4,
                                                                  lr_final=5e-5))
    qat_layers: str = "brevitas"  # brevitas | spinnq (chip-exact fake quant, no Brevitas)
    bits: int = 8  # 4: also PTQ-4 and QAT-4 (fine-tuned on the chip's 4-bit arithmetic)
    bits4: Bits4Config = field(default_factory=Bits4Config)
    save_splits: bool = False  # write train/val/test.npz (x, y) into the run folder
    percentiles: tuple[str, ...] = ("p99", "p99.9", "p99.99", "max")
    dt: float = DEFAULT_DT
    tick_s: float = REALTIME_TICK_S  # the seed's real-time tick
    placement: str = "default"  # default: spinnq's neurons per PE; seed: the seed's 147 PEs
    # recordings binned like the seed (600 x 1 ms) run on the seed's 147 PEs for the modelled
    # energy of the seed workload beside the published 0.459 J (0: off)
    seed_workload_samples: int = 8
    chip_batch: int = 64
    threads: int = 2
    plots: bool = True  # report plots (matplotlib, a few seconds)
    baseline: bool = True  # measure the float network on this CPU for the report


def with_preset(cfg: GestureConfig, name: str) -> GestureConfig:
    """`fast` (the defaults) or `seed`: the seed paper's workload, 1 ms frames, 600 steps, the
    147-PE placement, 1 ms tick, so the modelled energy is for the same work as its 0.459 J."""
    if name not in PRESETS:
        raise InputError(f"--preset must be one of {', '.join(PRESETS)}, got {name!r}")
    if name == "fast":
        return dataclasses.replace(cfg, preset=name)
    frames = dataclasses.replace(cfg.frames, bin_ms=1.0, steps=600)
    synth = dataclasses.replace(cfg.synth, duration_ms=max(cfg.synth.duration_ms, 600))
    return dataclasses.replace(cfg, preset=name, frames=frames, synth=synth, placement="seed",
                               tick_s=REALTIME_TICK_S)


def quick(cfg: GestureConfig) -> GestureConfig:
    """Tiny budgets for tests and smoke runs (minutes -> seconds); not for numbers."""
    return dataclasses.replace(
        cfg, n_train=33, n_val=11, n_test=22, limit=cfg.limit or 22,
        frames=dataclasses.replace(cfg.frames, steps=min(cfg.frames.steps, 12)),
        train=dataclasses.replace(cfg.train, epochs=1, batch=11),
        qat=dataclasses.replace(cfg.qat, epochs=1, batch=11),
        bits4=dataclasses.replace(cfg.bits4, epochs=1, batch=11, percentiles=("p99.9", "max")),
        percentiles=("p99.9", "max"),
        seed_workload_samples=min(cfg.seed_workload_samples, 2))
