"""Writes the page's data-upload fixtures, from data/digits.npz (seeded draws, so
the page's numbers on them are their own, not the bundled data set's):
- tests/e2e/fixtures/digits_small.npz: the keras.datasets .npz layout, written by
  numpy: 400 training and 300 test images;
- tests/e2e/fixtures/digits_small-images-idx3-ubyte and …-labels-idx1-ubyte: the
  MNIST IDX layout, 10 test images of each digit.

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

# IDX: 00 00 08 <rank>, big-endian u32 dimensions, then the bytes.
def write_idx(path, a):
    a = np.ascontiguousarray(a, dtype=np.uint8)
    head = bytes([0, 0, 8, a.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in a.shape)
    path.write_bytes(head + a.tobytes())
    print(path, path.stat().st_size, "bytes")


pick = np.sort(np.concatenate([rng.choice(np.flatnonzero(src["y_test"] == c), 10, replace=False) for c in range(10)]))
fix = ROOT / "tests" / "e2e" / "fixtures"
write_idx(fix / "digits_small-images-idx3-ubyte", src["x_test"][pick])
write_idx(fix / "digits_small-labels-idx1-ubyte", src["y_test"][pick])
