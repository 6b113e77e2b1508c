#!/usr/bin/env python3
"""Write an ONNX copy of every bundled Keras model: models/onnx/<stem>.onnx.

Run with a Python that has tensorflow, keras (3), tf_keras, tf2onnx, onnx and
onnxruntime (e.g. /opt/mlvenv/bin/python), from anywhere:

    python tools/export_onnx_models.py      # ~1 minute on 2 cores
    python tools/export_onnx_models.py --only lang_rev_gru,lang_tags_rnn   # just these

The copies are what scripts/bench feeds onnxruntime-web, so the comparison
runs the very same weights as Remodule.  tf2onnx converts tf_keras models, not
Keras 3 ones, so each model is rebuilt layer by layer in tf_keras from its
Keras 3 layer configs (same graph, same layer names) and given the Keras 3
weights layer by layer.  Inputs:

* image models: float32 (N, 28, 28, 1) in [0, 1], as the Keras model;
* text models: int32 token ids (N, T) (the Keras models take the same ids as
  float32 and cast them in the Embedding), so the ONNX graph starts at Gather.

tf2onnx writes SimpleRNN as a Loop (the Remodule loader reads LSTM, GRU and
RNN nodes, not loops), so the SimpleRNN models are written node by node
instead, as PyTorch exports them: Gather -> Transpose -> RNN -> Squeeze
(-> Transpose for a per-step head) -> MatMul -> Add -> Softmax; the
encoder-decoder repeats the encoder's last state with Unsqueeze + Tile, as
tf2onnx writes a Keras RepeatVector.

Every copy is checked here against the Keras 3 model on the whole test set
with onnxruntime (max |Δprob| < 1e-4 and equal argmax), and tests/onnx_copies.rs
checks that the Rust ONNX loader reads each copy as the same model.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# tf2onnx reaches tf_keras through tf.keras.
os.environ["TF_USE_LEGACY_KERAS"] = "1"

import json  # noqa: E402

import keras  # noqa: E402  (Keras 3: reads the bundled .keras files)
import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf2onnx  # noqa: E402
import tf_keras  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

tf.config.threading.set_inter_op_parallelism_threads(1)
tf.config.threading.set_intra_op_parallelism_threads(2)

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
OUT = os.path.join(ROOT, "models", "onnx")
TOL = 1e-4


def legacy_config(obj):
    """A Keras 3 layer config as tf_keras reads it: serialized objects lose the
    Keras 3-only keys, dtype policies become their name, initializers are left
    at their defaults (the weights are copied anyway)."""
    if isinstance(obj, list):
        return [legacy_config(v) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if obj.get("class_name") == "DTypePolicy":
        return obj["config"]["name"]
    out = {}
    for k, v in obj.items():
        if k in ("module", "registered_name", "build_config", "shared_object_id", "quantization_config") or k.endswith("_initializer"):
            continue
        out[k] = legacy_config(v)
    return out


def rebuild(model, token_input):
    """The same functional graph in tf_keras, with the same weights."""
    tensors, inputs = {}, []
    for layer in model.layers:  # topologically sorted
        if isinstance(layer, keras.layers.InputLayer):
            dtype = "int32" if token_input else layer.dtype
            t = tf_keras.Input(shape=layer.batch_shape[1:], dtype=dtype, name=layer.name)
            inputs.append(t)
            tensors[layer.name] = t
            continue
        node = layer._inbound_nodes[0]
        parents = [tensors[t._keras_history.operation.name] for t in node.input_tensors]
        cfg = legacy_config(layer.get_config())
        new = tf_keras.layers.deserialize({"class_name": layer.__class__.__name__, "config": cfg})
        tensors[layer.name] = new(parents if len(parents) > 1 else parents[0])
        new.set_weights(layer.get_weights())
    outputs = [tensors[t._keras_history.operation.name] for t in model.outputs]
    return tf_keras.Model(inputs, outputs[0] if len(outputs) == 1 else outputs, name=model.name)


def simple_rnn_onnx(model):
    """A SimpleRNN(tanh) model as ONNX nodes (opset 13), in one of the three
    bundled shapes: Embedding -> SimpleRNN -> Dense (many-to-one);
    Embedding -> SimpleRNN(seq) -> TimeDistributed(Dense) (tagger);
    Embedding -> SimpleRNN -> RepeatVector -> SimpleRNN(seq) ->
    TimeDistributed(Dense) (encoder-decoder; RepeatVector as tf2onnx writes it:
    Unsqueeze + Tile by constant repeats)."""
    kinds = [type(l).__name__ for l in model.layers]
    assert kinds in (["InputLayer", "Embedding", "SimpleRNN", "Dense"],
                     ["InputLayer", "Embedding", "SimpleRNN", "TimeDistributed"],
                     ["InputLayer", "Embedding", "SimpleRNN", "RepeatVector", "SimpleRNN", "TimeDistributed"]), kinds
    emb, head = model.layers[1], model.layers[-1]
    rnns = [l for l in model.layers if isinstance(l, keras.layers.SimpleRNN)]
    dense = head.layer if isinstance(head, keras.layers.TimeDistributed) else head
    assert all(r.activation.__name__ == "tanh" for r in rnns) and dense.activation.__name__ == "softmax"
    per_step = isinstance(head, keras.layers.TimeDistributed)
    assert rnns[-1].return_sequences == per_step and not any(r.return_sequences for r in rnns[:-1])
    (table,), (dk, db) = emb.get_weights(), dense.get_weights()
    t = model.input_shape[1]
    f32 = lambda name, a: numpy_helper.from_array(np.asarray(a, np.float32), name)  # noqa: E731
    i64 = lambda name, v: numpy_helper.from_array(np.array(v, np.int64), name)  # noqa: E731
    inits = [f32("embedding", table), f32("dense_kernel", dk), f32("dense_bias", db)]
    nodes = [helper.make_node("Gather", ["embedding", "input"], ["embedded"], axis=0),
             helper.make_node("Transpose", ["embedded"], ["time_major"], perm=[1, 0, 2])]
    x = "time_major"
    for k, rnn in enumerate(rnns):
        kk, rk, b = rnn.get_weights()
        inits += [f32(f"W{k}", kk.T[None]), f32(f"R{k}", rk.T[None]), f32(f"B{k}", np.concatenate([b, np.zeros_like(b)])[None])]
        nodes.append(helper.make_node("RNN", [x, f"W{k}", f"R{k}", f"B{k}"], [f"Y{k}", f"Y_h{k}"], name=rnn.name,
                                      hidden_size=rk.shape[0], activations=["Tanh"]))
        if rnn.return_sequences:
            inits.append(i64(f"axis1_{k}", [1]))
            nodes += [helper.make_node("Squeeze", [f"Y{k}", f"axis1_{k}"], [f"states{k}"]),           # [T, N, H]
                      helper.make_node("Transpose", [f"states{k}"], [f"out{k}"], perm=[1, 0, 2])]      # [N, T, H]
        else:
            inits.append(i64(f"axis0_{k}", [0]))
            nodes.append(helper.make_node("Squeeze", [f"Y_h{k}", f"axis0_{k}"], [f"out{k}"]))          # [N, H]
        x = f"out{k}"
        if k + 1 < len(rnns):  # RepeatVector(t), then the decoder reads it time-major
            inits += [i64("repeat_axis", [1]), i64("repeats", [1, t, 1])]
            nodes += [helper.make_node("Unsqueeze", [x, "repeat_axis"], ["encoded"]),
                      helper.make_node("Tile", ["encoded", "repeats"], ["repeated"]),
                      helper.make_node("Transpose", ["repeated"], ["decoder_in"], perm=[1, 0, 2])]
            x = "decoder_in"
    nodes += [helper.make_node("MatMul", [x, "dense_kernel"], ["logits_nobias"]),
              helper.make_node("Add", ["logits_nobias", "dense_bias"], ["logits"]),
              helper.make_node("Softmax", ["logits"], ["probs"], axis=-1)]
    out_shape = ["batch", t, dk.shape[1]] if per_step else ["batch", dk.shape[1]]
    graph = helper.make_graph(nodes, model.name, [helper.make_tensor_value_info("input", TensorProto.INT32, ["batch", t])],
                              [helper.make_tensor_value_info("probs", TensorProto.FLOAT, out_shape)], initializer=inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="onnx.helper")
    proto.ir_version = 8
    return proto


def test_inputs(model_file, catalog):
    entry = next(m for m in catalog["models"] if m["file"] == model_file)
    d = np.load(os.path.join(ROOT, "data", catalog["datasets"][entry["dataset"]]["file"]), allow_pickle=False)
    x = d["x_test"]
    if x.ndim == 3:  # images: the bundled models' convention (tools/train_models.py)
        return (x.astype(np.float32) / np.float32(255.0))[..., None], False
    return x.astype(np.int32), True


def main():
    import argparse
    ap = argparse.ArgumentParser(description="Write the ONNX copies of the bundled models.")
    ap.add_argument("--only", help="comma-separated stems to (re)write; the other copies are left as they are")
    ap.add_argument("--extra", action="append", default=[], metavar="STEM=NPZ",
                    help="also a model outside the catalog (models/STEM.keras, image data NPZ; e.g. resnet20)")
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    catalog = json.load(open(os.path.join(ROOT, "models", "catalog.json"), encoding="utf-8"))
    stems = [e["file"].rsplit(".", 1)[0] for e in catalog["models"]]
    only = set(args.only.split(",")) if args.only else set(stems)
    if only - set(stems):
        raise SystemExit(f"unknown model(s) {sorted(only - set(stems))}; known: {stems}")
    versions = {"tensorflow": tf.__version__, "keras": keras.__version__, "tf_keras": tf_keras.__version__,
                "tf2onnx": tf2onnx.__version__, "onnx": onnx.__version__, "onnxruntime": ort.__version__}
    extra = dict(e.split("=", 1) for e in args.extra)
    if args.extra:
        only = {s for s in only if s in extra} if args.only else set()
    entries = [e for e in catalog["models"] if e["file"].rsplit(".", 1)[0] in only] + [{"file": f"{s}.keras", "npz": n} for s, n in extra.items()]
    for entry in entries:
        stem = entry["file"].rsplit(".", 1)[0]
        k3 = keras.models.load_model(os.path.join(ROOT, "models", entry["file"]), compile=False)
        if "npz" in entry:
            x, tokens = np.load(entry["npz"])["x_test"].astype(np.float32) / np.float32(255.0), False
        else:
            x, tokens = test_inputs(entry["file"], catalog)
        if any(isinstance(l, keras.layers.SimpleRNN) for l in k3.layers):
            proto = simple_rnn_onnx(k3)
        else:
            legacy = rebuild(k3, tokens)
            spec = (tf.TensorSpec((None,) + tuple(legacy.input_shape[1:]), tf.int32 if tokens else tf.float32, name="input"),)
            proto, _ = tf2onnx.convert.from_keras(legacy, input_signature=spec, opset=13)
            proto.producer_name = "tf2onnx"
        onnx.checker.check_model(proto, full_check=True)
        path = os.path.join(OUT, f"{stem}.onnx")
        with open(path, "wb") as f:
            f.write(proto.SerializeToString())
        sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
        want = k3.predict(x.astype(np.float32), verbose=0, batch_size=256)
        diff = float(np.max(np.abs(got - want)))
        same = bool(np.array_equal(got.argmax(-1), want.argmax(-1)))
        ops = " ".join(sorted({n.op_type for n in proto.graph.node}))
        print(f"{stem:18s} {os.path.getsize(path):7d} bytes  max|Δ| {diff:.1e}  argmax equal {same}  ops {ops}", flush=True)
        assert diff < TOL and same, (stem, diff, same)
    with open(os.path.join(OUT, "VERSIONS.json"), "w", encoding="utf-8") as f:
        json.dump(versions, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
