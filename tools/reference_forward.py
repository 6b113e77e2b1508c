#!/usr/bin/env python3
"""Independent numpy forward pass of the bundled models (needs h5py + numpy, no TensorFlow).

    python tools/reference_forward.py            # checks every models/*.expected.npz

Reads the architecture from config.json (or the `model_config` attribute of a
legacy .h5), the weights from model.weights.h5 (or `model_weights/`), runs the
first 16 test images through plain numpy code and compares with the Keras
outputs stored in `<name>.expected.npz`.  It is a readable specification of
what the Rust loader has to do:

* `.keras`: weights of the k-th layer *that has weights or not* are found under
  `layers/<snake_case(class)>[_<n>]/vars/<i>` where `<n>` counts earlier layers
  of the same class in the config's layer order (first one has no suffix).  The
  group's `vars` has an attribute `name` = the layer's name in config.json.
  Dense: vars/0 kernel (in, out), vars/1 bias (out,).
  Conv2D: vars/0 kernel (kh, kw, in, out), vars/1 bias (out,).
* legacy `.h5`: `model_weights/<layer name>/<layer name>/{kernel,bias}`, order
  given by the `weight_names` attribute.
* Tensors are NHWC; Flatten is row-major over (H, W, C).
"""

import glob
import io
import json
import os
import re
import sys
import zipfile

import h5py
import numpy as np

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def snake(name):
    # keras.src.utils.naming.to_snake_case
    s = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    s = re.sub(r"([a-z])([A-Z])", r"\1_\2", s).lower()
    return s


def load_keras(path):
    z = zipfile.ZipFile(path)
    cfg = json.loads(z.read("config.json"))
    f = h5py.File(io.BytesIO(z.read("model.weights.h5")), "r")
    layers, seen = [], {}
    for layer in cfg["config"]["layers"]:
        cls = layer["class_name"]
        key = snake(cls)
        n = seen.get(key, 0)
        seen[key] = n + 1
        grp = f[f"layers/{key}" + (f"_{n}" if n else "") + "/vars"]
        assert grp.attrs["name"] == layer["config"]["name"], (grp.attrs["name"], layer["config"]["name"])
        ws = [grp[str(i)][()] for i in range(len(grp))]
        layers.append((cls, layer["config"], ws))
    return layers


def load_h5(path):
    f = h5py.File(path, "r")
    cfg = json.loads(f.attrs["model_config"])
    mw = f["model_weights"]
    layers = []
    for layer in cfg["config"]["layers"]:
        name = layer["config"]["name"]
        g = mw[name]
        ws = [g[w][()] for w in g.attrs["weight_names"]]
        layers.append((layer["class_name"], layer["config"], ws))
    return layers


def act(x, name):
    if name == "relu":
        return np.maximum(x, 0)
    if name == "softmax":
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    if name == "linear":
        return x
    raise NotImplementedError(name)


def forward(layers, x):
    x = x.astype(np.float64)
    for cls, cfg, ws in layers:
        if cls == "InputLayer":
            continue
        elif cls == "Flatten":
            x = x.reshape(x.shape[0], -1)
        elif cls == "Dense":
            x = act(x @ ws[0] + ws[1], cfg["activation"])
        elif cls == "Conv2D":
            assert cfg["padding"] == "valid" and tuple(cfg["strides"]) == (1, 1)
            k, b = ws
            kh, kw, _, co = k.shape
            n, h, w, _ = x.shape
            oh, ow = h - kh + 1, w - kw + 1
            out = np.zeros((n, oh, ow, co))
            for i in range(kh):
                for j in range(kw):
                    out += np.einsum("nhwc,co->nhwo", x[:, i:i + oh, j:j + ow, :], k[i, j])
            x = act(out + b, cfg["activation"])
        elif cls == "MaxPooling2D":
            p = cfg["pool_size"][0]
            assert cfg["padding"] == "valid" and tuple(cfg["strides"]) == (p, p)
            n, h, w, c = x.shape
            oh, ow = h // p, w // p
            x = x[:, :oh * p, :ow * p, :].reshape(n, oh, p, ow, p, c).max(axis=(2, 4))
        else:
            raise NotImplementedError(cls)
    return x


def main():
    worst = 0.0
    models = sorted(glob.glob(os.path.join(ROOT, "models", "*.keras")) +
                    glob.glob(os.path.join(ROOT, "models", "*.h5")))
    for path in models:
        stem = os.path.splitext(os.path.basename(path))[0]
        exp = np.load(os.path.join(ROOT, "models", f"{stem}.expected.npz"), allow_pickle=False)
        layers = load_keras(path) if path.endswith(".keras") else load_h5(path)
        probs = forward(layers, exp["x"])
        diff = float(np.max(np.abs(probs - exp["probs"])))
        worst = max(worst, diff)
        print(f"{os.path.basename(path):26s} max |numpy - keras| = {diff:.2e}  "
              f"argmax {probs.argmax(1).tolist()}")
    if worst > 1e-4:
        sys.exit(f"FAIL: max diff {worst:.2e} > 1e-4")
    print("OK: all within 1e-4")


if __name__ == "__main__":
    main()
