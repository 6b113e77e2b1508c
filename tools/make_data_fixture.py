"""Writes tests/e2e/fixtures/digits_small.npz: a small data set in the keras.datasets
.npz layout, written by numpy, for the page's data-upload test. It holds the last
400 training and 300 test images drawn (seeded) from data/digits.npz, so the
page's numbers on it are its own, not the bundled data set's.

Run: /opt/mlvenv/bin/python tools/make_data_fixture.py
"""
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
src = np.load(ROOT / "data" / "digits.npz")
out = ROOT / "tests" / "e2e" / "fixtures" / "digits_small.npz"
rng = np.random.default_rng(7)
tr = np.sort(rng.choice(len(src["y_train"]), 400, replace=False))
te = np.sort(rng.choice(len(src["y_test"]), 300, replace=False))
np.savez_compressed(
    out,
    x_train=src["x_train"][tr],
    y_train=src["y_train"][tr],
    x_test=src["x_test"][te],
    y_test=src["y_test"][te],
    class_names=src["class_names"],
)
print(out, out.stat().st_size, "bytes")
