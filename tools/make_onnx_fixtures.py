#!/usr/bin/env python3
"""Write the small ONNX test models in tests/fixtures/onnx/ with their expected outputs.

Run with a Python that has tensorflow, tf_keras, tf2onnx, onnx and onnxruntime
(e.g. /opt/mlvenv/bin/python):

    python tools/make_onnx_fixtures.py          # ~30 s on 2 cores
    python tools/make_onnx_fixtures.py --pairs  # only the pair_* Keras/ONNX twins and tf_repeat

Two kinds of exporter, so the Rust loader sees what real tools write:

* tf_*  -- tf_keras models (NHWC, channels last) converted by tf2onnx
           (`tf2onnx.convert.from_keras`, opset 13).  tf2onnx inserts the
           NHWC<->NCHW Transposes (or Reshapes, for one channel) around Conv
           and pooling, folds BatchNormalization into Conv and biases into
           MatMul+Add.
* pt_*  -- the same kind of models written node by node with `onnx.helper`
           the way PyTorch exports them (NCHW input, Conv with explicit pads,
           Flatten, Gemm with transB=1, BatchNormalization, Dropout and
           Identity nodes).  pt_mlp and pt_cnn carry the weights of tf_mlp and
           tf_cnn converted to PyTorch layouts by this script (Conv kernels
           (out, in, kh, kw), Dense rows reordered from HWC to CHW flatten
           order), and the script checks that onnxruntime gives the same
           outputs for both, so these two also check this script.

For every model `<stem>.onnx` there is `<stem>.expected.npz` (deterministic
zip, see tools/build_data.py) with

    x      float32  the inputs exactly as onnxruntime was given them
                    (N x 28 x 28 x 1 for tf_*, N x 1 x 28 x 28 for pt_*, or
                    the small RGB shapes of *_rgb)
    probs  float32  (N, classes): onnxruntime's output on x

The digits models are trained briefly (2 epochs, seeded) on data/digits.npz so
their accuracy is meaningful (the CLI tests evaluate them); the RGB and the
residual models have seeded random weights.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ["TF_DETERMINISTIC_OPS"] = "1"
os.environ.setdefault("PYTHONHASHSEED", "0")

import json  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf2onnx  # noqa: E402
import tf_keras as keras  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

tf.config.threading.set_inter_op_parallelism_threads(1)
tf.config.threading.set_intra_op_parallelism_threads(2)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, ".."))
sys.path.insert(0, HERE)
from build_data import write_npz  # noqa: E402

OUT = os.path.join(ROOT, "tests", "fixtures", "onnx")
L = keras.layers
N_EXPECTED = 16


def digits():
    d = np.load(os.path.join(ROOT, "data", "digits.npz"), allow_pickle=False)
    f = lambda x: (x.astype(np.float32) / np.float32(255.0))[..., None]  # noqa: E731
    return f(d["x_train"]), d["y_train"].astype(np.int64), f(d["x_test"]), d["y_test"].astype(np.int64)


def run(model_proto, x):
    sess = ort.InferenceSession(model_proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return np.asarray(sess.run(None, {sess.get_inputs()[0].name: x})[0], dtype=np.float32)


def save(stem, model_proto, x):
    onnx.checker.check_model(model_proto, full_check=True)
    path = os.path.join(OUT, f"{stem}.onnx")
    with open(path, "wb") as f:
        f.write(model_proto.SerializeToString())
    probs = run(onnx.load(path), x)
    write_npz(os.path.join(OUT, f"{stem}.expected.npz"), [("x", x), ("probs", probs)])
    ops = sorted({n.op_type for n in model_proto.graph.node})
    print(f"{stem:14s} {os.path.getsize(path):7d} bytes  ops {' '.join(ops)}", flush=True)
    return probs


def from_keras(model, stem, x, dtype=tf.float32):
    spec = (tf.TensorSpec((None,) + tuple(model.input_shape[1:]), dtype, name="input"),)
    proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=13)
    proto.producer_name = "tf2onnx"
    keras_probs = model.predict(x, verbose=0)
    probs = save(stem, proto, x)
    d = float(np.max(np.abs(probs - keras_probs)))
    assert d < 1e-5, (stem, "onnxruntime vs Keras", d)
    return probs


def train(model, seed, data, epochs=2):
    xtr, ytr, xte, yte = data
    model.compile(optimizer=keras.optimizers.Adam(), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(xtr, ytr, epochs=epochs, batch_size=64, shuffle=True, verbose=0)
    _, acc = model.evaluate(xte, yte, verbose=0)
    print(f"  trained (seed {seed}): test accuracy {acc:.4f}")


def randomize(model, seed):
    """Seeded random weights (biases non-zero too, so tf2onnx keeps every Add)."""
    rng = np.random.default_rng(seed)
    return [rng.normal(0, 0.4, w.shape).astype(np.float32) for w in model.get_weights()]


# ------------------------------------------------------------------ onnx.helper, PyTorch style

class Graph:
    def __init__(self):
        self.nodes, self.inits, self.n = [], [], 0

    def const(self, name, arr, dtype=np.float32):
        self.inits.append(numpy_helper.from_array(np.asarray(arr, dtype=dtype), name))
        return name

    def node(self, op, inputs, name, **attrs):
        out = f"{name}_out"
        self.nodes.append(helper.make_node(op, inputs, [out], name=name, **attrs))
        return out

    def model(self, name, input_shape, out, classes, opset=13, input_type=TensorProto.FLOAT, out_shape=None):
        inp = helper.make_tensor_value_info("input", input_type, ["batch"] + list(input_shape))
        # Rename the last output to "probs".
        self.nodes[-1].output[0] = "probs"
        outp = helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch"] + (out_shape or [classes]))
        g = helper.make_graph(self.nodes, name, [inp], [outp], initializer=self.inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="onnx.helper (PyTorch style)")
        m.ir_version = 8
        return m


def pt_mlp(keras_mlp):
    """NCHW input → Flatten → Gemm(transB=1) → Relu → MatMul + Add → Softmax."""
    (k1, b1), (k2, b2) = [l.get_weights() for l in keras_mlp.layers if isinstance(l, L.Dense)]
    g = Graph()
    x = g.node("Flatten", ["input"], "flatten", axis=1)
    x = g.node("Gemm", [x, g.const("fc1.weight", k1.T), g.const("fc1.bias", b1)], "fc1", transB=1)
    x = g.node("Relu", [x], "relu1")
    x = g.node("MatMul", [x, g.const("fc2.weight_t", k2)], "fc2_matmul")
    x = g.node("Add", [x, g.const("fc2.bias", b2)], "fc2_add")
    g.node("Softmax", [x], "softmax", axis=1)
    return g.model("pt_mlp", [1, 28, 28], x, 10)


def conv_weight(k):
    """Keras (kh, kw, in, out) → ONNX (out, in, kh, kw)."""
    return np.ascontiguousarray(k.transpose(3, 2, 0, 1))


def chw_rows(k, h, w, c):
    """Dense kernel rows in Keras HWC flatten order → PyTorch CHW flatten order."""
    return k.reshape(h, w, c, -1).transpose(2, 0, 1, 3).reshape(h * w * c, -1)


def pt_cnn(keras_cnn):
    """The tf_cnn weights as PyTorch would export the same network (NCHW, pads, Gemm transB)."""
    convs = [l for l in keras_cnn.layers if isinstance(l, L.Conv2D)]
    dense = [l for l in keras_cnn.layers if isinstance(l, L.Dense)][0]
    flat_in = [l for l in keras_cnn.layers if isinstance(l, L.Flatten)][0].input_shape  # (None, h, w, c)
    (c1k, c1b), (c2k, c2b) = [c.get_weights() for c in convs]
    dk, db = dense.get_weights()
    g = Graph()
    x = g.node("Conv", ["input", g.const("conv1.weight", conv_weight(c1k)), g.const("conv1.bias", c1b)], "conv1",
               kernel_shape=[3, 3], pads=[0, 0, 0, 0], strides=[1, 1])
    x = g.node("Relu", [x], "relu1")
    x = g.node("MaxPool", [x], "pool1", kernel_shape=[2, 2], strides=[2, 2])
    x = g.node("Conv", [x, g.const("conv2.weight", conv_weight(c2k)), g.const("conv2.bias", c2b)], "conv2",
               kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1], dilations=[1, 1], group=1)
    x = g.node("Relu", [x], "relu2")
    x = g.node("AveragePool", [x], "pool2", kernel_shape=[2, 2], strides=[2, 2])
    x = g.node("Flatten", [x], "flatten", axis=1)
    x = g.node("Gemm", [x, g.const("fc.weight", chw_rows(dk, *flat_in[1:]).T), g.const("fc.bias", db)], "fc",
               alpha=1.0, beta=1.0, transB=1)
    g.node("Softmax", [x], "softmax", axis=1)
    return g.model("pt_cnn", [1, 28, 28], x, 10)


def pt_residual(seed):
    """Conv → BN → Relu → Conv → BN → Add(skip) → Relu → MaxPool → GlobalAveragePool → Flatten →
    Dropout → Gemm → Identity → Softmax, random weights."""
    rng = np.random.default_rng(seed)
    r = lambda *s: rng.normal(0, 0.4, s).astype(np.float32)  # noqa: E731
    g = Graph()

    def bn(x, name, c):
        return g.node("BatchNormalization", [x, g.const(f"{name}.weight", rng.uniform(0.5, 1.5, c)),
                                             g.const(f"{name}.bias", r(c)), g.const(f"{name}.running_mean", r(c)),
                                             g.const(f"{name}.running_var", rng.uniform(0.5, 2.0, c))],
                      name, epsilon=1e-5, momentum=0.9)

    x = g.node("Conv", ["input", g.const("conv1.weight", r(6, 1, 3, 3)), g.const("conv1.bias", r(6))], "conv1",
               kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2])  # 28 → 14: top pad 1 (not TF SAME) …
    x = bn(x, "bn1", 6)
    skip = g.node("Relu", [x], "relu1")
    y = g.node("Conv", [skip, g.const("conv2.weight", r(6, 6, 3, 3))], "conv2", kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    y = bn(y, "bn2", 6)
    x = g.node("Add", [skip, y], "add")
    x = g.node("Relu", [x], "relu2")
    x = g.node("MaxPool", [x], "pool", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    x = g.node("GlobalAveragePool", [x], "gap")
    x = g.node("Flatten", [x], "flatten")
    x = g.node("Dropout", [x], "dropout")
    x = g.node("Gemm", [x, g.const("fc.weight", r(10, 6)), g.const("fc.bias", r(10))], "fc", transB=1)
    x = g.node("Identity", [x], "identity")
    g.node("Softmax", [x], "softmax", axis=-1)
    return g.model("pt_residual", [1, 28, 28], x, 10)


def pt_rgb(seed):
    """Three input channels, NCHW: the engine must be fed NHWC (see ARCHITECTURE.md)."""
    rng = np.random.default_rng(seed)
    r = lambda *s: rng.normal(0, 0.5, s).astype(np.float32)  # noqa: E731
    g = Graph()
    x = g.node("Conv", ["input", g.const("conv.weight", r(4, 3, 3, 3)), g.const("conv.bias", r(4))], "conv",
               kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    x = g.node("Relu", [x], "relu")
    x = g.node("MaxPool", [x], "pool", kernel_shape=[2, 2], strides=[2, 2])
    x = g.node("Flatten", [x], "flatten")
    x = g.node("Gemm", [x, g.const("fc.weight", r(5, 4 * 4 * 4)), g.const("fc.bias", r(5))], "fc", transB=1)
    g.node("Softmax", [x], "softmax", axis=1)
    return g.model("pt_rgb", [3, 8, 8], x, 5)


def pt_glue(seed, opset):
    """The glue exporters emit, on random weights: element-wise constants, SAME_LOWER,
    ceil_mode, padded average pooling, NHWC round trips, Unsqueeze/Squeeze, MatMul over the
    last axis of an image, Shape→Gather→Unsqueeze→Concat→Reshape (PyTorch's x.view(N, -1)),
    Gemm with alpha/beta and transB=0, Sum of three tensors."""
    rng = np.random.default_rng(seed)
    r = lambda *s: rng.normal(0, 0.5, s).astype(np.float32)  # noqa: E731
    g = Graph()
    i64 = lambda name, v: g.const(name, np.array(v, dtype=np.int64), np.int64)  # noqa: E731
    axes = lambda name, v, **kw: ({"axes": v}, []) if opset < 13 else ({}, [i64(name, v)])  # noqa: E731
    x = g.node("Mul", ["input", g.const("two", np.float32(2.0))], "scale")
    x = g.node("Sub", [x, g.const("mean", r(1, 1, 1))], "center")
    x = g.node("Conv", [x, g.const("conv1.weight", r(3, 1, 3, 3)), g.const("conv1.bias", r(3))], "conv1",
               kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_LOWER")  # 28 → 14, odd pad on top
    x = g.node("Add", [x, g.const("conv1.extra_bias", r(1, 3, 1, 1))], "conv1_bias")  # folded into conv1
    x = g.node("Relu", [x], "relu1")
    x = g.node("MaxPool", [x], "pool1", kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)  # 14 → 7
    x = g.node("Transpose", [x], "to_nhwc", perm=[0, 2, 3, 1])
    x = g.node("Div", [x, g.const("per_channel", rng.uniform(0.5, 2, (1, 1, 1, 3)).astype(np.float32))], "div")
    x = g.node("Transpose", [x], "to_nchw", perm=[0, 3, 1, 2])
    x = g.node("AveragePool", [x], "pool2", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])  # 7 → 4
    y = g.node("Sigmoid", [x], "gate")
    x = g.node("Sum", [x, y, x], "sum")
    x = g.node("Transpose", [x], "hw_c", perm=[0, 2, 3, 1])                  # [N, 4, 4, 3]
    attrs, extra = axes("ax3", [3])
    x = g.node("Unsqueeze", [x] + extra, "unsq", **attrs)                    # [N, 4, 4, 1, 3]
    attrs, extra = axes("ax2b", [-2])
    x = g.node("Squeeze", [x] + extra, "sq", **attrs)                        # [N, 4, 4, 3]
    x = g.node("MatMul", [x, g.const("pixel_dense.weight", r(3, 6))], "pixel_dense")
    x = g.node("Add", [x, g.const("pixel_dense.bias", r(1, 6))], "pixel_dense_bias")
    x = g.node("Tanh", [x], "tanh")                                          # [N, 4, 4, 6]
    shape = g.node("Shape", [x], "shape")
    n = g.node("Gather", [shape, i64("zero", 0)], "batch", axis=0)
    attrs, extra = axes("ax0", [0])
    n = g.node("Unsqueeze", [n] + extra, "batch_1d", **attrs)
    new_shape = g.node("Concat", [n, i64("minus_one", [-1])], "new_shape", axis=0)
    x = g.node("Reshape", [x, new_shape], "flatten")                         # [N, 96]
    x = g.node("Gemm", [x, g.const("fc.weight", r(96, 7)), g.const("fc.bias", r(1, 7))], "fc",
               alpha=0.5, beta=2.0, transB=0)
    g.node("Softmax", [x], "softmax", axis=1 if opset < 13 else -1)
    return g.model(f"pt_glue{opset}", [1, 28, 28], x, 7, opset=opset)


def lang(name):
    d = np.load(os.path.join(ROOT, "data", f"{name}.npz"), allow_pickle=False)
    vocab = int(max(d["x_train"].max(), d["x_test"].max())) + 1
    return (d["x_train"].astype(np.int64), d["y_train"].astype(np.int64),
            d["x_test"].astype(np.int64), d["y_test"].astype(np.int64), vocab)


def pt_recurrent(kind, seed, vocab, steps, classes, opset=13):
    """PyTorch-style sequence models on token ids [N, T] (int64), random weights:
    lstm  Gather → Transpose(1,0,2) → LSTM (zero initial_h/c given) → Y_h → Squeeze → Gemm → Softmax
    gru   Gather → Transpose → GRU(linear_before_reset=0) → Y → Gather(last step) → Squeeze → Gemm
    rnn   Gather → Transpose → RNN(Relu) → Y → Squeeze → Transpose → MatMul+Add → Softmax per step."""
    rng = np.random.default_rng(seed)
    r = lambda *s: rng.normal(0, 0.4, s).astype(np.float32)  # noqa: E731
    g = Graph()
    i64 = lambda name, v: g.const(name, np.array(v, dtype=np.int64), np.int64)  # noqa: E731
    e, h = 8, 10
    x = g.node("Gather", [g.const("embedding.weight", r(vocab, e)), "input"], "embedding", axis=0)
    if kind == "lstm":
        x = g.node("Transpose", [x], "time_major", perm=[1, 0, 2])
        # Zero initial states sized at run time, as exporters write them.
        n = g.node("Gather", [g.node("Shape", [x], "x_shape"), i64("one", 1)], "batch_size", axis=0)
        n = g.node("Unsqueeze", [n, i64("ax0u", [0])], "batch_size_1d")
        dims = g.node("Concat", [i64("dirs", [1]), n, i64("hidden", [h])], "state_shape", axis=0)
        zeros = g.node("ConstantOfShape", [dims], "h0", value=helper.make_tensor("zero", TensorProto.FLOAT, [1], [0.0]))
        g.nodes.append(helper.make_node("LSTM", [x, g.const("lstm.W", r(1, 4 * h, e)), g.const("lstm.R", r(1, 4 * h, h)),
                                                  g.const("lstm.B", r(1, 8 * h)), "", zeros, zeros],
                                        ["lstm_Y", "lstm_Y_h", "lstm_Y_c"], name="lstm", hidden_size=h))
        x = g.node("Squeeze", ["lstm_Y_h", i64("ax0", [0])], "last_state")
        x = g.node("Gemm", [x, g.const("fc.weight", r(classes, h)), g.const("fc.bias", r(classes))], "fc", transB=1)
        g.node("Softmax", [x], "softmax", axis=-1)
        return g.model("pt_lstm", [steps], x, classes, opset=opset, input_type=TensorProto.INT64)
    if kind == "gru":
        x = g.node("Transpose", [x], "time_major", perm=[1, 0, 2])
        g.nodes.append(helper.make_node("GRU", [x, g.const("gru.W", r(1, 3 * h, e)), g.const("gru.R", r(1, 3 * h, h)),
                                                 g.const("gru.B", r(1, 6 * h))],
                                        ["gru_Y"], name="gru", hidden_size=h, linear_before_reset=0))
        x = g.node("Gather", ["gru_Y", i64("last", -1)], "last_step", axis=0)   # [1, N, H]
        x = g.node("Squeeze", [x, i64("ax0", [0])], "squeeze")
        x = g.node("Gemm", [x, g.const("fc.weight", r(classes, h)), g.const("fc.bias", r(classes))], "fc", transB=1)
        g.node("Softmax", [x], "softmax", axis=-1)
        return g.model("pt_gru", [steps], x, classes, opset=opset, input_type=TensorProto.INT64)
    x = g.node("Transpose", [x], "time_major", perm=[1, 0, 2])
    g.nodes.append(helper.make_node("RNN", [x, g.const("rnn.W", r(1, h, e)), g.const("rnn.R", r(1, h, h)), g.const("rnn.B", r(1, 2 * h))],
                                    ["rnn_Y"], name="rnn", hidden_size=h, activations=["Relu"]))
    x = g.node("Squeeze", ["rnn_Y", i64("ax1", [1])], "squeeze")          # [T, N, H]
    x = g.node("Transpose", [x], "batch_major", perm=[1, 0, 2])          # [N, T, H]
    x = g.node("MatMul", [x, g.const("tag.weight", r(h, classes))], "tag")
    x = g.node("Add", [x, g.const("tag.bias", r(classes))], "tag_bias")
    g.node("Softmax", [x], "softmax", axis=-1)
    return g.model("pt_rnn", [steps], x, classes, opset=opset, input_type=TensorProto.INT64, out_shape=[steps, classes])


# ------------------------------------------------------------------ Keras / ONNX pairs

def keras3_weights(path):
    """Variables of a Keras 3 `.keras` file: {layer key: [arrays]} (see tests/fixtures/keras/README.md)."""
    import io
    import zipfile
    import h5py
    with zipfile.ZipFile(path) as z:
        f = h5py.File(io.BytesIO(z.read("model.weights.h5")), "r")
        out = {}
        for key in f["layers"]:
            g = f["layers"][key]
            vars_ = g["cell"]["vars"] if "cell" in g else g["vars"]
            out[key] = [np.asarray(vars_[str(i)]) for i in range(len(vars_))]
        return out


def pair_simple_rnn():
    """tests/fixtures/keras/simple_rnn.keras rewritten as an ONNX RNN graph (PyTorch style):
    Keras kernel (F, U) / recurrent (U, U) become ONNX W (1, U, F) / R (1, U, U), the bias Wb."""
    w = keras3_weights(os.path.join(ROOT, "tests", "fixtures", "keras", "simple_rnn.keras"))
    (emb,), (k, rk, b), (dk, db) = w["embedding"], w["simple_rnn"], w["dense"]
    u = k.shape[1]
    g = Graph()
    i64 = lambda name, v: g.const(name, np.array(v, dtype=np.int64), np.int64)  # noqa: E731
    x = g.node("Gather", [g.const("embedding.weight", emb), "input"], "embedding", axis=0)
    x = g.node("Transpose", [x], "time_major", perm=[1, 0, 2])
    g.nodes.append(helper.make_node("RNN", [x, g.const("rnn.W", k.T[None]), g.const("rnn.R", rk.T[None]),
                                            g.const("rnn.B", np.concatenate([b, np.zeros_like(b)])[None])],
                                    ["rnn_Y", "rnn_Y_h"], name="rnn", hidden_size=u))
    x = g.node("Squeeze", ["rnn_Y_h", i64("ax0", [0])], "last_state")
    x = g.node("Gemm", [x, g.const("fc.weight", dk.T), g.const("fc.bias", db)], "fc", transB=1)
    g.node("Softmax", [x], "softmax", axis=-1)
    return g.model("pair_simple_rnn", [7], x, dk.shape[1], input_type=TensorProto.INT64)


def pairs():
    """Keras/ONNX pairs with the same weights (tests/onnx_fixtures.rs checks that
    both decompose into the same masks): written next to each other as
    pair_<stem>.onnx (+ pair_<stem>.h5 when the Keras side is new)."""
    keras_dir = os.path.join(ROOT, "tests", "fixtures", "keras")
    # LSTM, per-step head: the existing tf_keras fixture through tf2onnx.
    m = keras.models.load_model(os.path.join(keras_dir, "keras2_seq2seq.h5"))
    # Token ids as int32 (the loader takes integer ids; a float input would need a Cast to int).
    x = np.load(os.path.join(keras_dir, "keras2_seq2seq.expected.npz"))["x"]
    from_keras(m, "pair_lstm_tags", x.astype(np.int32), dtype=tf.int32)
    # GRU (reset_after, Keras's default): a new tf_keras model, saved beside its ONNX twin.
    xtr, ytr, xte, yte, vocab = lang("lang_a")
    keras.utils.set_random_seed(36)
    inp = keras.Input((xtr.shape[1],), name="input")
    x = L.Embedding(vocab, 8, name="embedding")(inp)
    x = L.GRU(12, name="gru")(x)
    out = L.Dense(5, activation="softmax", name="dense")(x)
    gru = keras.Model(inp, out, name="pair_gru")
    train(gru, 36, (xtr.astype(np.float32), ytr, xte.astype(np.float32), yte), epochs=2)
    gru.save(os.path.join(OUT, "pair_gru.h5"))
    from_keras(gru, "pair_gru", xte[:N_EXPECTED].astype(np.int32), dtype=tf.int32)
    # SimpleRNN: tf2onnx writes a Loop for it, so the ONNX twin is built by hand.
    x = np.load(os.path.join(keras_dir, "simple_rnn.expected.npz"))
    probs = save("pair_simple_rnn", pair_simple_rnn(), x["x"].astype(np.int64))
    d = float(np.max(np.abs(probs - x["probs"])))
    assert d < 1e-5, ("pair_simple_rnn vs Keras", d)
    # An encoder-decoder: tf2onnx writes RepeatVector as Unsqueeze + Tile (the loader reads it back as a RepeatVector).
    keras.utils.set_random_seed(37)
    inp = keras.Input((6,), name="input")
    x = L.Embedding(12, 4, name="embedding")(inp)
    x = L.LSTM(5, name="encoder")(x)
    x = L.RepeatVector(4, name="repeat")(x)
    x = L.LSTM(5, return_sequences=True, name="decoder")(x)
    out = L.TimeDistributed(L.Dense(3, activation="softmax", name="dense"), name="per_step")(x)
    from_keras(keras.Model(inp, out, name="tf_repeat"), "tf_repeat", np.arange(12, dtype=np.int32).reshape(2, 6), dtype=tf.int32)


# ------------------------------------------------------------------ main

def main():
    os.makedirs(OUT, exist_ok=True)
    if "--pairs" in sys.argv[1:]:
        return pairs()
    data = digits()
    x16 = data[2][:N_EXPECTED]
    x16_nchw = np.ascontiguousarray(x16.transpose(0, 3, 1, 2))

    keras.utils.set_random_seed(11)
    inp = keras.Input((28, 28, 1), name="input")
    x = L.Flatten(name="flatten")(inp)
    x = L.Dense(16, activation="relu", name="dense_1")(x)
    out = L.Dense(10, activation="softmax", name="dense_2")(x)
    mlp = keras.Model(inp, out, name="tf_mlp")
    train(mlp, 11, data)
    p_tf_mlp = from_keras(mlp, "tf_mlp", x16)

    keras.utils.set_random_seed(12)
    inp = keras.Input((28, 28, 1), name="input")
    x = L.Conv2D(4, 3, activation="relu", name="conv2d_1")(inp)
    x = L.MaxPooling2D(2, name="max_pooling2d")(x)
    x = L.Conv2D(8, 3, padding="same", activation="relu", name="conv2d_2")(x)
    x = L.AveragePooling2D(2, name="average_pooling2d")(x)
    x = L.Flatten(name="flatten")(x)
    out = L.Dense(10, activation="softmax", name="dense")(x)
    cnn = keras.Model(inp, out, name="tf_cnn")
    train(cnn, 12, data)
    p_tf_cnn = from_keras(cnn, "tf_cnn", x16)

    keras.utils.set_random_seed(13)
    inp = keras.Input((28, 28, 1), name="input")
    x = L.Conv2D(8, 3, strides=2, padding="same", name="conv2d_1")(inp)
    x = L.BatchNormalization(momentum=0.9, name="bn_1")(x)
    x = L.ReLU(name="relu_1")(x)
    y = L.Conv2D(8, 3, padding="same", name="conv2d_2")(x)
    y = L.BatchNormalization(momentum=0.9, name="bn_2")(y)
    x = L.Add(name="add")([x, y])
    x = L.Activation("relu", name="relu_2")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    x = L.Dropout(0.2, name="dropout")(x)
    x = L.Dense(10, name="logits")(x)
    out = L.Softmax(name="softmax")(x)
    res = keras.Model(inp, out, name="tf_residual")
    train(res, 13, data)
    from_keras(res, "tf_residual", x16)

    keras.utils.set_random_seed(14)
    inp = keras.Input((8, 8, 3), name="input")
    x = L.Conv2D(4, 3, padding="same", activation="relu", name="conv")(inp)
    x = L.MaxPooling2D(2, name="pool")(x)
    x = L.Conv2D(6, 2, strides=2, activation="tanh", name="conv_2")(x)
    x = L.Flatten(name="flatten")(x)
    x = L.Dense(8, activation="sigmoid", name="dense_1")(x)
    out = L.Dense(5, activation="softmax", name="dense_2")(x)
    rgb = keras.Model(inp, out, name="tf_rgb")
    rgb.set_weights(randomize(rgb, 14))
    x_rgb = np.random.default_rng(15).uniform(0, 1, (8, 8, 8, 3)).astype(np.float32)
    from_keras(rgb, "tf_rgb", x_rgb)

    p = save("pt_mlp", pt_mlp(mlp), x16_nchw)
    d = float(np.max(np.abs(p - p_tf_mlp)))
    assert d < 1e-5, ("pt_mlp vs tf_mlp", d)
    p = save("pt_cnn", pt_cnn(cnn), x16_nchw)
    d = float(np.max(np.abs(p - p_tf_cnn)))
    assert d < 1e-5, ("pt_cnn vs tf_cnn", d)
    save("pt_residual", pt_residual(21), x16_nchw)
    save("pt_rgb", pt_rgb(22), np.ascontiguousarray(x_rgb.transpose(0, 3, 1, 2)))
    save("pt_glue13", pt_glue(23, 13), x16_nchw)
    save("pt_glue11", pt_glue(24, 11), x16_nchw)

    # Sequences: the language-ID sets (token ids, T = 32; per-step tags, T = 64).
    xtr, ytr, xte, yte, vocab = lang("lang_a")
    keras.utils.set_random_seed(31)
    inp = keras.Input((xtr.shape[1],), dtype="int32", name="input")
    x = L.Embedding(vocab, 8, name="embedding")(inp)
    x = L.LSTM(16, name="lstm")(x)
    out = L.Dense(5, activation="softmax", name="dense")(x)
    lstm = keras.Model(inp, out, name="tf_lstm")
    train(lstm, 31, (xtr, ytr, xte, yte), epochs=3)
    from_keras(lstm, "tf_lstm", xte[:N_EXPECTED].astype(np.int32), dtype=tf.int32)

    xtr_t, ytr_t, xte_t, yte_t, vocab_t = lang("lang_tags")
    keras.utils.set_random_seed(32)
    inp = keras.Input((xtr_t.shape[1],), dtype="int32", name="input")
    x = L.Embedding(vocab_t, 8, name="embedding")(inp)
    x = L.GRU(16, return_sequences=True, name="gru")(x)
    out = L.TimeDistributed(L.Dense(5, activation="softmax", name="tag"), name="per_step")(x)
    tags = keras.Model(inp, out, name="tf_gru_tags")
    train(tags, 32, (xtr_t, ytr_t, xte_t, yte_t), epochs=2)
    from_keras(tags, "tf_gru_tags", xte_t[:N_EXPECTED].astype(np.int32), dtype=tf.int32)

    save("pt_lstm", pt_recurrent("lstm", 33, vocab, xtr.shape[1], 5), xte[:N_EXPECTED])
    save("pt_gru", pt_recurrent("gru", 34, vocab, xtr.shape[1], 5), xte[:N_EXPECTED])
    save("pt_rnn", pt_recurrent("rnn", 35, vocab_t, xtr_t.shape[1], 5), xte_t[:N_EXPECTED])

    with open(os.path.join(OUT, "VERSIONS.json"), "w") as f:
        json.dump({"tensorflow": tf.__version__, "tf_keras": keras.__version__, "tf2onnx": tf2onnx.__version__,
                   "onnx": onnx.__version__, "onnxruntime": ort.__version__, "numpy": np.__version__}, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
