"""Cut the real event recordings of tests/data/dvs-real from faery 0.7.1's source archive.

Run once by hand (not by the tests), with the archive's `tests/data/` extracted somewhere:
    python tests/data/dvs-real/convert.py /path/to/faery-0.7.1/tests/data
Needs `expelliarmus` (tonic's Prophesee reader). Each cut is a 128 x 128 pixel window (no
rescaling) of a Prophesee recording over a time window, re-timed to start at 0, written in
tonic's DVS128 Gesture layout: (N, 4) float32 columns x, y, p, t with t in ms.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
from expelliarmus import Wizard

HERE = Path(__file__).resolve().parent
# (source file, encoding, x0, y0, t0 s, t1 s, split, user folder, file label)
CUTS = [
    ("gen4.dat", "dat", 512, 128, 1.0, 3.0, "train", "user01_led", 0),
    ("gen4.dat", "dat", 512, 256, 3.0, 5.0, "train", "user01_led", 1),
    ("gen4.dat", "dat", 384, 128, 6.0, 8.0, "train", "user02_led", 2),
    ("gen4.dat", "dat", 768, 384, 0.0, 3.0, "test", "user24_led", 3),
    ("evt2.raw", "evt2", 384, 256, 0.0, 0.1, "test", "user24_led", 4),
]
FOLDERS = {"train": "ibmGestureTrain", "test": "ibmGestureTest"}


def cut(ev: np.ndarray, x0: int, y0: int, t0: float, t1: float) -> np.ndarray:
    t = (ev["t"] - ev["t"][0]) / 1000.0  # ms from the recording's first event
    keep = ((ev["x"] >= x0) & (ev["x"] < x0 + 128) & (ev["y"] >= y0) & (ev["y"] < y0 + 128)
            & (t >= t0 * 1000) & (t < t1 * 1000))
    return np.column_stack([ev["x"][keep] - x0, ev["y"][keep] - y0, ev["p"][keep],
                            t[keep] - t0 * 1000]).astype(np.float32)


def main(src: Path) -> None:
    manifest = []
    for name, enc, x0, y0, t0, t1, split, user, label in CUTS:
        path = src / name
        ev = Wizard(encoding=enc, fpath=str(path)).read()
        arr = cut(ev, x0, y0, t0, t1)
        out = HERE / "DVSGesture" / FOLDERS[split] / user / f"{label}.npy"
        out.parent.mkdir(parents=True, exist_ok=True)
        np.save(out, arr)
        manifest.append({"file": str(out.relative_to(HERE)), "source": name,
                         "source_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                         "window_xy": [x0, y0], "window_s": [t0, t1], "events": len(arr)})
    (HERE / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
