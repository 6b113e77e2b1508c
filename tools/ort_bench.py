"""onnxruntime native (CPU provider) on the ONNX copies of the bundled models,
timed like `remodule bench --inference-only`: one call over each model's whole
test split, warm-up, calls batched to ~20 ms, at least 3 turns and 0.5 s,
total time / calls. Run by scripts/bench (it makes the venv); not a test.

  ort_bench.py --threads 1 digits_cnn=digits lang_a_lstm=lang_a ...   # JSON on stdout
  ort_bench.py --peak --threads 1                                     # numpy sgemm GFLOP/s

--threads 0 = every core. Inputs follow the input rule (docs/DATA.md): integer
images x 1/255 as float32 NHWC; token ids cast to the graph's integer type.
"""

import argparse
import json
import os
import sys
import time

args = argparse.ArgumentParser()
args.add_argument("--threads", type=int, default=1)
args.add_argument("--peak", action="store_true", help="measure float32 GEMM GFLOP/s with numpy instead")
args.add_argument("--min-s", type=float, default=0.5)
args.add_argument("models", nargs="*", help="MODEL=DATA (file stems under models/onnx/ and data/; DATA may be a path to an .npz)")
a = args.parse_args()
threads = a.threads or os.cpu_count()
# numpy's BLAS reads its thread count when it loads.
os.environ["OPENBLAS_NUM_THREADS"] = str(threads)

import numpy as np  # noqa: E402


def seconds_per_call(f, min_s):
    """Mean seconds per call of f (the same protocol as app/bench.rs time_each)."""
    f()
    k = 1
    while True:
        t = time.perf_counter()
        for _ in range(k):
            f()
        if time.perf_counter() - t >= 0.02 or k >= 1 << 20:
            break
        k *= 2
    total, calls, turns, t0 = 0.0, 0, 0, time.perf_counter()
    while turns < 3 or time.perf_counter() - t0 < min_s:
        t = time.perf_counter()
        for _ in range(k):
            f()
        total += time.perf_counter() - t
        calls += k
        turns += 1
    return total / calls


if a.peak:
    # A large square GEMM: what a tuned BLAS reaches on this machine.
    n = 2048
    x = np.random.default_rng(0).random((n, n), dtype=np.float32)
    y = np.empty_like(x)
    s = seconds_per_call(lambda: np.matmul(x, x, out=y), a.min_s)
    json.dump({"threads": threads, "gflops": 2 * n**3 / s / 1e9, "blas": "numpy matmul float32 %d x %d" % (n, n)}, sys.stdout)
    print()
    sys.exit(0)

import onnxruntime as ort  # noqa: E402

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
rows = []
for spec in a.models:
    model, data = spec.split("=")
    # DATA: a stem under data/, or a path to an .npz (relative to the repository).
    z = np.load(os.path.join(root, data) if data.endswith(".npz") else os.path.join(root, "data", data + ".npz"))
    x, y = z["x_test"], z["y_test"].astype(np.int64)
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    s = ort.InferenceSession(os.path.join(root, "models", "onnx", model + ".onnx"), so, providers=["CPUExecutionProvider"])
    inp = s.get_inputs()[0]
    if "float" in inp.type:
        # The input rule: integer images x 1/255, float data as stored.
        x = x.astype(np.float32) / (255.0 if x.dtype.kind in "ui" else 1.0)
        x = x.reshape((x.shape[0],) + tuple(d if isinstance(d, int) else 1 for d in inp.shape[1:]))
    else:
        x = x.astype(np.int64 if "int64" in inp.type else np.int32)
    feed = {inp.name: x}
    sec = seconds_per_call(lambda: s.run(None, feed), a.min_s)
    out = s.run(None, feed)[0]
    acc = float((out.argmax(-1) == y).mean())
    rows.append({"model": model, "samples": int(x.shape[0]), "samples_per_s": x.shape[0] / sec, "accuracy": acc})
json.dump({"threads": threads, "onnxruntime": ort.__version__, "rows": rows}, sys.stdout)
print()
