"""Writes tests/fixtures/torch/: small PyTorch models, trained for a few seconds
on the bundled data and saved by `torch.onnx.export` itself (the TorchScript
exporter, opset 17), with what PyTorch computes on them. tests/torch_fixtures.rs
reads them; the files are committed, so the tests need neither torch nor this
script: it is only for regenerating them.

- <name>.onnx          the exported model (float input [N, 1, 28, 28] in [0, 1],
                       or [N, 28, 28] for the 1-D model; int64 token ids [N, 32])
- <name>.expected.npz  x (the first 100 test samples, as the model takes them),
                       probs (PyTorch's outputs on them) and y (their labels)
- accuracy.json        each model's accuracy by PyTorch: "<name>" on those 100
                       samples, "<name>.full" on the whole test split it was scored
                       on (tests/fixtures/layers/digits_float.npz: 400 images;
                       data/lang_a.npz: 1000 sequences)
- VERSIONS.json        the versions below

Every file is checked in onnxruntime against PyTorch before it is written.

Versions (Debian 12's CPU PyTorch; onnxruntime from PyPI in a venv that sees it):
    apt-get install -y python3-torch python3-onnx   # torch 1.13.1+dfsg-4, onnx 1.12.0, numpy 1.24.2
    /usr/bin/python3 -m venv --system-site-packages target/torchvenv
    target/torchvenv/bin/pip install onnxruntime==1.17.3
Run (~1 minute on 2 cores):
    target/torchvenv/bin/python tools/make_torch_fixtures.py [--only name,name]
"""
import argparse
import json
import subprocess
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "torch"
OUT.mkdir(parents=True, exist_ok=True)
OPSET = 17
N_EXPECTED = 100

torch.manual_seed(5)
torch.set_num_threads(2)

digits = np.load(ROOT / "data" / "digits.npz")
x_tr = torch.tensor(digits["x_train"] / 255.0, dtype=torch.float32).unsqueeze(1)
y_tr = torch.tensor(digits["y_train"].astype(np.int64))
# Scored on the layer fixtures' float digits (the tests decompose on that file too).
flt = np.load(ROOT / "tests" / "fixtures" / "layers" / "digits_float.npz")
x_te = torch.tensor(flt["x_test"]).unsqueeze(1)
y_te = torch.tensor(flt["y_test"])
lang = np.load(ROOT / "data" / "lang_a.npz")
t_tr, ty_tr = torch.tensor(lang["x_train"].astype(np.int64)), torch.tensor(lang["y_train"].astype(np.int64))
t_te, ty_te = torch.tensor(lang["x_test"].astype(np.int64)), torch.tensor(lang["y_test"].astype(np.int64))
VOCAB = int(lang["x_train"].max()) + 1


class Mlp(nn.Module):
    """Linear + ReLU on the NCHW input flattened by `view` (Shape/Gather/Unsqueeze/Concat/Reshape); logits out."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.out = nn.Linear(784, 16), nn.Linear(16, 16), nn.Linear(16, 10)

    def forward(self, x):
        x = x.view(x.size(0), -1)
        return self.out(F.relu(self.fc2(F.relu(self.fc1(x)))))


def cnn():
    """Conv2d, BatchNorm2d (after the conv: folded by the exporter; after a pool: kept), ReLU,
    MaxPool2d, a padded Conv2d, AvgPool2d, Flatten, Linear, Softmax."""
    return nn.Sequential(
        nn.Conv2d(1, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.BatchNorm2d(8),
        nn.Conv2d(8, 12, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(12 * 6 * 6, 10), nn.Softmax(dim=1),
    )


def acts_cnn():
    """LeakyReLU, PReLU (one slope per channel), ELU, SiLU, Hardsigmoid."""
    return nn.Sequential(
        nn.Conv2d(1, 6, 3, stride=2), nn.LeakyReLU(0.1),
        nn.Conv2d(6, 8, 3), nn.PReLU(8),
        nn.Conv2d(8, 8, 3, stride=2), nn.ELU(),
        nn.Flatten(), nn.Linear(8 * 5 * 5, 24), nn.SiLU(),
        nn.Linear(24, 16), nn.Hardsigmoid(),
        nn.Linear(16, 10),
    )


def gelu_mlp():
    """GELU (opset 17 has no Gelu op: the exporter writes it as Div/Erf/Add/Mul)."""
    return nn.Sequential(nn.AvgPool2d(2), nn.Flatten(), nn.Linear(196, 24), nn.GELU(), nn.Linear(24, 10))


class DwCnn(nn.Module):
    """ZeroPad2d, a depthwise conv (groups = C) with padding, a 1×1 conv, and the global pools:
    AdaptiveAvgPool2d(1), AdaptiveMaxPool2d(1), mean over H, W."""

    def __init__(self):
        super().__init__()
        self.pad = nn.ZeroPad2d((1, 0, 1, 0))
        self.c1 = nn.Conv2d(1, 8, 3, stride=2)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.pw = nn.Conv2d(8, 24, 1)
        self.gap, self.gmp = nn.AdaptiveAvgPool2d(1), nn.AdaptiveMaxPool2d(1)
        self.fc = nn.Linear(72, 10)

    def forward(self, x):
        x = F.relu(self.c1(self.pad(x)))
        x = F.relu(self.pw(F.relu(self.dw(x))))
        g = torch.cat([torch.flatten(self.gap(x), 1), torch.flatten(self.gmp(x), 1), x.mean(dim=(2, 3))], dim=1)
        return F.softmax(self.fc(g), dim=1)


class Conv1d(nn.Module):
    """Image rows as 28 channels over 28 steps: Conv1d, MaxPool1d, AvgPool1d, global pools."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv1d(28, 16, 3)
        self.c2 = nn.Conv1d(16, 16, 3, padding=1)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        x = F.max_pool1d(F.relu(self.c1(x)), 2)
        x = F.avg_pool1d(F.relu(self.c2(x)), 2)
        g = torch.cat([F.adaptive_max_pool1d(x, 1).flatten(1), F.adaptive_avg_pool1d(x, 1).flatten(1)], dim=1)
        return F.softmax(self.fc(g), dim=1)


class Recurrent(nn.Module):
    """Embedding → LSTM/GRU/RNN (batch_first, one or both directions) → last step (`out[:, -1]`, or
    `h_n[-1]`; bidirectional: `cat([h_n[-2], h_n[-1]])`) → Linear."""

    def __init__(self, cell, last="out", bidirectional=False):
        super().__init__()
        self.emb = nn.Embedding(VOCAB, 8)
        self.rnn = cell(8, 16, batch_first=True, bidirectional=bidirectional)
        self.last = last
        self.fc = nn.Linear(32 if bidirectional else 16, 5)

    def forward(self, t):
        out, h = self.rnn(self.emb(t))
        if isinstance(h, tuple):
            h = h[0]
        if self.last == "out":
            z = out[:, -1]
        else:  # h_n of the last layer: both directions' final states side by side when bidirectional
            z = torch.cat([h[-2], h[-1]], dim=1) if self.rnn.bidirectional else h[-1]
        return F.softmax(self.fc(z), dim=1)


# name: (build, input kind, epochs)
MODELS = {
    "mlp": (Mlp, "image", 12),
    "cnn": (cnn, "image", 8),
    "acts_cnn": (acts_cnn, "image", 10),
    "gelu_mlp": (gelu_mlp, "image", 10),
    "dw_cnn": (DwCnn, "image", 25),
    "conv1d": (Conv1d, "rows", 10),
    "lstm": (lambda: Recurrent(nn.LSTM), "tokens", 8),
    "gru": (lambda: Recurrent(nn.GRU, last="h"), "tokens", 8),
    "rnn": (lambda: Recurrent(nn.RNN), "tokens", 8),
    "bilstm": (lambda: Recurrent(nn.LSTM, bidirectional=True), "tokens", 2),
    "bigru": (lambda: Recurrent(nn.GRU, last="h", bidirectional=True), "tokens", 4),
}


def data(kind):
    if kind == "tokens":
        return t_tr, ty_tr, t_te, ty_te
    if kind == "rows":
        return x_tr[:, 0], y_tr, x_te[:, 0], y_te
    return x_tr, y_tr, x_te, y_te


def train(model, x, y, epochs):
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    ends_in_softmax = None
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(y))
        for k in range(0, len(y), 32):
            idx = perm[k:k + 32]
            out = model(x[idx])
            if ends_in_softmax is None:
                ends_in_softmax = bool(torch.allclose(out.sum(1), torch.ones(len(idx)), atol=1e-4))
            loss = F.nll_loss(torch.log(out + 1e-7), y[idx]) if ends_in_softmax else F.cross_entropy(out, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="")
    only = [s for s in ap.parse_args().only.split(",") if s]
    report = OUT / "accuracy.json"
    accuracy = json.loads(report.read_text()) if report.exists() else {}
    for name, (build, kind, epochs) in MODELS.items():
        if only and name not in only:
            continue
        torch.manual_seed(7)
        model = build()
        x, y, xt, yt = data(kind)
        train(model, x, y, epochs)
        with torch.no_grad():
            full = model(xt)
        x100 = xt[:N_EXPECTED]
        probs = full[:N_EXPECTED].numpy()
        path = OUT / f"{name}.onnx"
        dyn = {"input": {0: "batch"}, "output": {0: "batch"}}
        torch.onnx.export(model, x100[:2], str(path), opset_version=OPSET, input_names=["input"], output_names=["output"],
                          dynamic_axes=dyn, do_constant_folding=True)
        onnx.checker.check_model(onnx.load(str(path)))
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = sess.run(None, {"input": x100.numpy()})[0]
        d = float(np.abs(got - probs).max())
        assert d < 1e-5, f"{name}: onnxruntime differs from torch by {d}"
        np.savez_compressed(OUT / f"{name}.expected.npz", x=x100.numpy(), probs=probs, y=yt[:N_EXPECTED].numpy())
        accuracy[name] = float((probs.argmax(1) == yt[:N_EXPECTED].numpy()).mean())
        accuracy[name + ".full"] = float((full.numpy().argmax(1) == yt.numpy()).mean())
        ops = sorted({n.op_type for n in onnx.load(str(path)).graph.node})
        print(f"{name}: {path.stat().st_size} bytes, accuracy {accuracy[name]:.2f} / {accuracy[name + '.full']:.4f}, "
              f"ort Δ {d:.1e}, ops {ops}")
    report.write_text(json.dumps(accuracy, indent=1, sort_keys=True) + "\n")
    deb = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "python3-torch"], capture_output=True, text=True).stdout
    versions = {"torch": torch.__version__, "python3-torch (Debian)": deb, "onnx": onnx.__version__,
                "onnxruntime": ort.__version__, "numpy": np.__version__, "opset": OPSET}
    (OUT / "VERSIONS.json").write_text(json.dumps(versions, indent=1) + "\n")


if __name__ == "__main__":
    main()
