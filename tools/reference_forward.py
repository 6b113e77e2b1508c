#!/usr/bin/env python3
"""Independent numpy forward pass of Keras model files (needs h5py + numpy, no TensorFlow).

    python tools/reference_forward.py            # checks every models/*.keras|.h5 and
                                                 # tests/fixtures/keras/*.keras|.h5
    python tools/reference_forward.py FILE...    # just these files

Reads the architecture from config.json (or the `model_config` attribute of a
legacy .h5), the weights from model.weights.h5 (or `model_weights/`), runs the
`x` of `<stem>.expected.npz` through plain float64 numpy code and compares with
the Keras outputs `probs` stored there.  It is a readable specification of what
the Rust loader has to do.

Weights
-------
* `.keras` (Keras 3): the weights of a layer are under
  `layers/<snake_case(class)>[_<n>]/` where `<n>` counts earlier layers of the
  same class in the config's layer order (first one has no suffix), *not* the
  layer's name.  The layer's own variables are `vars/0, vars/1, ...` (the `vars`
  group has an attribute `name` = the layer's name); layers that wrap another
  layer keep its variables one level down:
      SimpleRNN/LSTM/GRU    `cell/vars/{0 kernel, 1 recurrent_kernel, 2 bias}`
                            (`cell/vars` has name "simple_rnn_cell"/"lstm_cell"/"gru_cell")
      TimeDistributed       `layer/vars/{0 kernel, 1 bias}` (name = the inner layer's name)
* legacy `.h5` (Keras 3 and Keras 2): `model_weights/<layer name>` has an
  attribute `weight_names` (possibly split as weight_names0, weight_names1, ...
  when long); the datasets are at `model_weights/<layer name>/<weight name>`, e.g.
  `model_weights/lstm/lstm/lstm_cell/kernel` (Keras 3) or
  `.../lstm_cell/kernel:0` (Keras 2).  Keras 2 TimeDistributed(Dense) stores
  `time_distributed/kernel:0` (no inner-layer level), Keras 3
  `time_distributed/dense/kernel`.

Shapes / layouts
----------------
  Dense               kernel (in, out), bias (out,); applied to the last axis
  Conv2D              kernel (kh, kw, in, out), bias (out,); NHWC; "same" pads
                      total = max((out-1)*s + k - in, 0), top/left = total // 2
  BatchNormalization  [gamma if scale], [beta if center], moving_mean, moving_variance
  Embedding           embeddings (input_dim, output_dim); input ids are floats, cast to int
  SimpleRNN           kernel (in, u), recurrent_kernel (u, u), bias (u,)
                      h = act(x W + h U + b)
  LSTM                kernel (in, 4u), recurrent_kernel (u, 4u), bias (4u,), gate
                      blocks in the order i, f, c, o:
                      z = x W + h U + b; i = ra(z_i); f = ra(z_f); o = ra(z_o)
                      c = f*c + i*act(z_c); h = o*act(c)
  GRU                 kernel (in, 3u), recurrent_kernel (u, 3u), blocks z, r, h
                      reset_after=True:  bias (2, 3u) = [input bias; recurrent bias]
                        xz = x W + b[0]; hz = h U + b[1]
                        z = ra(xz_z + hz_z); r = ra(xz_r + hz_r); n = act(xz_h + r*hz_h)
                      reset_after=False: bias (3u,)
                        z = ra(x W_z + h U_z + b_z); r = ra(x W_r + h U_r + b_r)
                        n = act(x W_h + (r*h) U_h + b_h)
                      h = z*h + (1-z)*n
  (act = `activation`, ra = `recurrent_activation`; initial states zero; no
  masking; go_backwards/stateful/return_state are not used by these files.)
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


def group_vars(grp):
    """A .keras layer group's variables: own vars/<i>, then nested groups (cell, layer)."""
    ws = []
    if "vars" in grp:
        v = grp["vars"]
        ws += [v[str(i)][()] for i in range(len(v))]
    for key in sorted(k for k in grp if k != "vars"):
        ws += group_vars(grp[key])
    return ws


def load_keras(path):
    z = zipfile.ZipFile(path)
    cfg = json.loads(z.read("config.json"))
    f = h5py.File(io.BytesIO(z.read("model.weights.h5")), "r")
    weights, seen = {}, {}
    for layer in cfg["config"]["layers"]:
        key = snake(layer["class_name"])
        n = seen.get(key, 0)
        seen[key] = n + 1
        grp = f[f"layers/{key}" + (f"_{n}" if n else "")]
        assert grp["vars"].attrs["name"] == layer["config"]["name"], \
            (grp["vars"].attrs["name"], layer["config"]["name"])
        weights[layer["config"]["name"]] = group_vars(grp)
    return cfg, weights


def h5_list_attr(g, name):
    if name in g.attrs:
        vals = list(g.attrs[name])
    else:
        vals, i = [], 0
        while f"{name}{i}" in g.attrs:
            vals += list(g.attrs[f"{name}{i}"])
            i += 1
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in vals]


def load_h5(path):
    f = h5py.File(path, "r")
    cfg = f.attrs["model_config"]
    cfg = json.loads(cfg.decode("utf-8") if isinstance(cfg, bytes) else cfg)
    mw = f["model_weights"]
    weights = {}
    for layer in cfg["config"]["layers"]:
        name = layer["config"]["name"]
        g = mw[name]
        weights[name] = [g[w][()] for w in h5_list_attr(g, "weight_names")]
    return cfg, weights


def load_model(path):
    cfg, weights = load_keras(path) if path.endswith(".keras") else load_h5(path)
    return cfg, weights


# ---------------------------------------------------------------- graph

def inbound(layer):
    """Names of the layers feeding `layer` (Keras 3 or Keras 2 config)."""
    nodes = layer.get("inbound_nodes") or []
    if not nodes:
        return []
    assert len(nodes) == 1, "shared layers are not supported"
    node = nodes[0]
    names = []
    if isinstance(node, dict):             # Keras 3: {"args": [...], "kwargs": {...}}
        def walk(a):
            if isinstance(a, dict) and a.get("class_name") == "__keras_tensor__":
                names.append(a["config"]["keras_history"][0])
            elif isinstance(a, (list, tuple)):
                for b in a:
                    walk(b)
        walk(node["args"])
    else:                                  # Keras 2: [[name, node, tensor, kwargs], ...]
        names = [n[0] for n in node]
    return names


def endpoint(spec):
    """input_layers / output_layers: ["name", 0, 0] or [["name", 0, 0]]."""
    if isinstance(spec[0], list):
        assert len(spec) == 1, "one input / output only"
        spec = spec[0]
    return spec[0]


# ---------------------------------------------------------------- ops

def act(x, name):
    if name == "relu":
        return np.maximum(x, 0)
    if name == "softmax":
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    if name == "linear":
        return x
    if name == "tanh":
        return np.tanh(x)
    if name == "sigmoid":
        return 1.0 / (1.0 + np.exp(-x))
    raise NotImplementedError(name)


def pads(size, k, s, padding):
    if padding == "valid":
        return (size - k) // s + 1, 0
    out = -(-size // s)
    return out, max((out - 1) * s + k - size, 0) // 2


def windows2d(x, kh, kw, sh, sw, padding, fill):
    """(n, oh, ow, kh*kw, c) patches; out-of-image taps = `fill`."""
    n, h, w, c = x.shape
    oh, top = pads(h, kh, sh, padding)
    ow, left = pads(w, kw, sw, padding)
    hp = max((oh - 1) * sh + kh, h + top)
    wp = max((ow - 1) * sw + kw, w + left)
    xp = np.full((n, hp, wp, c), fill)
    xp[:, top:top + h, left:left + w, :] = x
    taps = [xp[:, i:i + (oh - 1) * sh + 1:sh, j:j + (ow - 1) * sw + 1:sw, :]
            for i in range(kh) for j in range(kw)]
    return np.stack(taps, axis=3)


def conv2d(x, cfg, ws):
    assert cfg.get("data_format", "channels_last") == "channels_last"
    assert tuple(cfg.get("dilation_rate", (1, 1))) == (1, 1) and cfg.get("groups", 1) == 1
    k = ws[0]
    kh, kw, ci, co = k.shape
    sh, sw = cfg["strides"]
    p = windows2d(x, kh, kw, sh, sw, cfg["padding"], 0.0)
    out = np.einsum("nhwtc,tco->nhwo", p, k.reshape(kh * kw, ci, co))
    if cfg["use_bias"]:
        out = out + ws[1]
    return act(out, cfg["activation"])


def pool2d(x, cfg, kind):
    ph, pw = cfg["pool_size"] if isinstance(cfg["pool_size"], list) else [cfg["pool_size"]] * 2
    st = cfg.get("strides") or [ph, pw]
    st = st if isinstance(st, list) else [st, st]
    if kind == "max":
        return windows2d(x, ph, pw, st[0], st[1], cfg["padding"], -np.inf).max(axis=3)
    p = windows2d(x, ph, pw, st[0], st[1], cfg["padding"], np.nan)
    return np.nanmean(p, axis=3)          # "same" average pooling skips padded taps


def batch_norm(x, cfg, ws):
    ws = list(ws)
    gamma = ws.pop(0) if cfg.get("scale", True) else 1.0
    beta = ws.pop(0) if cfg.get("center", True) else 0.0
    mean, var = ws
    return (x - mean) / np.sqrt(var + cfg["epsilon"]) * gamma + beta


def rnn(x, cls, cfg, ws):
    for k in ("go_backwards", "stateful", "return_state"):
        assert not cfg.get(k, False), f"{k} not supported here"
    kernel, rec = ws[0], ws[1]
    bias = ws[2] if cfg["use_bias"] else None
    u = cfg["units"]
    a = cfg["activation"]
    ra = cfg.get("recurrent_activation")
    n, t, _ = x.shape
    h = np.zeros((n, u))
    c = np.zeros((n, u))
    outs = []
    for step in range(t):
        xt = x[:, step, :]
        if cls == "SimpleRNN":
            h = act(xt @ kernel + h @ rec + (bias if bias is not None else 0.0), a)
        elif cls == "LSTM":
            z = xt @ kernel + h @ rec + (bias if bias is not None else 0.0)
            i, f, g, o = (z[:, j * u:(j + 1) * u] for j in range(4))
            c = act(f, ra) * c + act(i, ra) * act(g, a)
            h = act(o, ra) * act(c, a)
        elif cls == "GRU":
            if cfg.get("reset_after", True):
                b_in, b_rec = (bias[0], bias[1]) if bias is not None else (0.0, 0.0)
                xz = xt @ kernel + b_in
                hz = h @ rec + b_rec
                z = act(xz[:, :u] + hz[:, :u], ra)
                r = act(xz[:, u:2 * u] + hz[:, u:2 * u], ra)
                nn = act(xz[:, 2 * u:] + r * hz[:, 2 * u:], a)
            else:
                b = bias if bias is not None else np.zeros(3 * u)
                xz = xt @ kernel + b
                z = act(xz[:, :u] + h @ rec[:, :u], ra)
                r = act(xz[:, u:2 * u] + h @ rec[:, u:2 * u], ra)
                nn = act(xz[:, 2 * u:] + (r * h) @ rec[:, 2 * u:], a)
            h = z * h + (1 - z) * nn
        outs.append(h)
    return np.stack(outs, axis=1) if cfg["return_sequences"] else h


def apply(cls, cfg, ws, xs):
    x = xs[0]
    if cls in ("InputLayer", "Dropout"):
        return x
    if cls == "Flatten":
        return x.reshape(x.shape[0], -1)
    if cls == "Dense":
        return act(x @ ws[0] + (ws[1] if cfg["use_bias"] else 0.0), cfg["activation"])
    if cls == "Conv2D":
        return conv2d(x, cfg, ws)
    if cls == "MaxPooling2D":
        return pool2d(x, cfg, "max")
    if cls == "AveragePooling2D":
        return pool2d(x, cfg, "avg")
    if cls == "GlobalAveragePooling2D":
        return x.mean(axis=(1, 2), keepdims=bool(cfg.get("keepdims", False)))
    if cls == "BatchNormalization":
        return batch_norm(x, cfg, ws)
    if cls == "Add":
        return sum(xs)
    if cls == "Activation":
        return act(x, cfg["activation"])
    if cls == "ReLU":
        assert cfg.get("max_value") is None and not cfg.get("negative_slope") and not cfg.get("threshold")
        return np.maximum(x, 0)
    if cls == "Softmax":
        return act(x, "softmax")
    if cls == "Embedding":
        return ws[0][x.astype(np.int64)]
    if cls in ("SimpleRNN", "LSTM", "GRU"):
        return rnn(x, cls, cfg, ws)
    if cls == "TimeDistributed":
        inner = cfg["layer"]
        n, t = x.shape[:2]
        y = apply(inner["class_name"], inner["config"], ws, [x.reshape((n * t,) + x.shape[2:])])
        return y.reshape((n, t) + y.shape[1:])
    if cls == "RepeatVector":
        return np.repeat(x[:, None, :], cfg["n"], axis=1)
    raise NotImplementedError(cls)


def forward(model, x):
    cfg, weights = model
    layers = cfg["config"]["layers"]
    x = np.asarray(x, dtype=np.float64)
    if cfg["class_name"] == "Sequential":
        for layer in layers:
            c = layer["config"]
            x = apply(layer["class_name"], c, weights[c["name"]], [x])
        return x
    values = {endpoint(cfg["config"]["input_layers"]): x}
    for layer in layers:               # config order is a topological order
        c = layer["config"]
        if layer["class_name"] == "InputLayer":
            continue
        values[c["name"]] = apply(layer["class_name"], c, weights[c["name"]],
                                  [values[n] for n in inbound(layer)])
    return values[endpoint(cfg["config"]["output_layers"])]


def expected_for(path):
    d, base = os.path.split(path)
    stem = base.split(".")[0]
    return os.path.join(d, f"{stem}.expected.npz")


def main():
    paths = sys.argv[1:] or sorted(
        glob.glob(os.path.join(ROOT, "models", "*.keras")) +
        glob.glob(os.path.join(ROOT, "models", "*.h5")) +
        glob.glob(os.path.join(ROOT, "tests", "fixtures", "keras", "*.keras")) +
        glob.glob(os.path.join(ROOT, "tests", "fixtures", "keras", "*.h5")))
    worst = 0.0
    for path in paths:
        exp = np.load(expected_for(path), allow_pickle=False)
        probs = forward(load_model(path), exp["x"])
        diff = float(np.max(np.abs(probs - exp["probs"])))
        worst = max(worst, diff)
        print(f"{os.path.relpath(path, ROOT):45s} max |numpy - keras| = {diff:.2e}  "
              f"argmax {probs.argmax(-1).reshape(len(probs), -1)[:, 0].tolist()}")
    if worst > 1e-4:
        sys.exit(f"FAIL: max diff {worst:.2e} > 1e-4")
    print("OK: all within 1e-4")


if __name__ == "__main__":
    main()
