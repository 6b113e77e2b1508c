"""Writes tests/fixtures/layers/variants/: small data sets saved the ways NumPy users save
them, from data/digits.npz (the first 40 training and 30 test images):
- onehot_f16.npz: float16 images in [0, 1], one-hot float32 labels (to_categorical),
  class names as a bytes ('|S') array;
- int_labels.npz: uint8 images, int32 labels, class names as a '<U' array;
- nan.npz: float32 images with one NaN (must be refused);
- pickled.npz: class names as an object array (np.array([...], dtype=object); refused).

Run: /opt/mlvenv/bin/python tools/make_npz_variants.py
"""
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "layers" / "variants"
OUT.mkdir(parents=True, exist_ok=True)
src = np.load(ROOT / "data" / "digits.npz")
xtr, ytr, xte, yte = src["x_train"][:40], src["y_train"][:40], src["x_test"][:30], src["y_test"][:30]
names = [str(c) for c in range(10)]
onehot = lambda y: np.eye(10, dtype=np.float32)[y]
np.savez(OUT / "onehot_f16.npz", x_train=(xtr / 255).astype(np.float16), y_train=onehot(ytr),
         x_test=(xte / 255).astype(np.float16), y_test=onehot(yte), class_names=np.array(names, dtype="S"))
np.savez(OUT / "int_labels.npz", x_train=xtr, y_train=ytr.astype(np.int32), x_test=xte, y_test=yte.astype(np.int32),
         class_names=np.array(names))
bad = (xte / 255).astype(np.float32)
bad[3, 5, 7] = np.nan
np.savez(OUT / "nan.npz", x_train=(xtr / 255).astype(np.float32), y_train=ytr, x_test=bad, y_test=yte)
np.savez(OUT / "pickled.npz", x_train=xtr, y_train=ytr, x_test=xte, y_test=yte, class_names=np.array(names, dtype=object))
for f in sorted(OUT.iterdir()):
    print(f, f.stat().st_size, "bytes")
