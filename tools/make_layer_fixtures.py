"""Writes tests/fixtures/layers/: small digit models that use the layers and input
pipelines ordinary Keras code uses, each saved by the real tools, with what Keras
computes on them:

- <name>.keras        Keras 3 (`model.save`)
- <name>.k2.h5        the same architecture built and trained with tf_keras (Keras 2)
- <name>.k2.onnx      that Keras 2 model converted by tf2onnx (opset 13)
- <name>.expected.npz x (model input, float32) and probs (Keras 3's outputs);
  <name>.k2.expected.npz the same for the Keras 2 model (the ONNX copy must match it)
- digits_float.npz    a data set as a NumPy user saves it: float32 images in [0, 1],
                      int64 labels, class names as a '<U' string array
- accuracy.json       each model's test accuracy by Keras on the data it was trained for
                      (float models: digits_float.npz; Rescaling models: the raw u8 digits)

Run (TensorFlow, tf_keras, tf2onnx, onnx in one venv; ~3 minutes on 2 cores):
    /opt/mlvenv/bin/python tools/make_layer_fixtures.py [--only name,name]
(--only rebuilds just those models; the other entries of accuracy.json are kept.)
"""
import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np
import tensorflow as tf
import keras
import tf_keras
import tf2onnx

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "layers"
OUT.mkdir(parents=True, exist_ok=True)

src = np.load(ROOT / "data" / "digits.npz")
rng = np.random.default_rng(11)
# (The first fixtures drew 3000 of a larger digits.npz; the bundled one now holds 1000.)
tr = np.sort(rng.choice(len(src["y_train"]), min(3000, len(src["y_train"])), replace=False))
te = np.sort(rng.choice(len(src["y_test"]), 400, replace=False))
x_tr_u8, y_tr = src["x_train"][tr], src["y_train"][tr].astype(np.int64)
x_te_u8, y_te = src["x_test"][te], src["y_test"][te].astype(np.int64)
x_tr_f, x_te_f = (x_tr_u8 / 255.0).astype(np.float32), (x_te_u8 / 255.0).astype(np.float32)
names = np.array([str(c) for c in range(10)])
# The data files keep 500 of the training images (decomposing needs some; evaluating none).
# (Written once: the draws are seeded, and rewriting would only change zip timestamps.)
K = 500
if not (OUT / "digits_float.npz").exists():
    np.savez_compressed(OUT / "digits_float.npz", x_train=x_tr_f[:K], y_train=y_tr[:K], x_test=x_te_f, y_test=y_te, class_names=names)
    # The same samples as stored u8 (what the input rule scales by 1/255).
    np.savez_compressed(OUT / "digits_u8.npz", x_train=x_tr_u8[:K], y_train=y_tr[:K], x_test=x_te_u8, y_test=y_te, class_names=names)


lang = np.load(ROOT / "data" / "lang_a.npz")


def build(K, name):
    """The architecture `name` in Keras module K (keras or tf_keras)."""
    L = K.layers
    if name == "hsig_lstm":  # hard_sigmoid as the LSTM's gate activation (older Keras 2 models' default)
        inp = K.Input((32,))
        x = L.Embedding(int(lang["x_train"].max()) + 1, 8)(inp)
        x = L.LSTM(16, recurrent_activation="hard_sigmoid")(x)
        out = L.Dense(5, activation="softmax")(x)
        return K.Model(inp, out, name=name)
    if name.startswith("bidir"):  # Bidirectional recurrent layers, one merge mode each
        inp = K.Input((32,))
        x = L.Embedding(int(lang["x_train"].max()) + 1, 8)(inp)
        if name == "bidir_lstm":
            x = L.Bidirectional(L.LSTM(12))(x)  # merge_mode "concat"
        elif name == "bidir_seq":  # a sequence-returning GRU summed, then a SimpleRNN averaged
            x = L.Bidirectional(L.GRU(8, return_sequences=True), merge_mode="sum")(x)
            x = L.Bidirectional(L.SimpleRNN(8), merge_mode="ave")(x)
        else:  # bidir_mul
            x = L.Bidirectional(L.LSTM(8), merge_mode="mul")(x)
        out = L.Dense(5, activation="softmax")(x)
        return K.Model(inp, out, name=name)
    if name == "conv1d_cnn":  # image rows as a sequence of 28 steps × 28 features: 1-D convolutions and pools
        inp = K.Input((28, 28))
        x = L.Conv1D(16, 3, activation="relu")(inp)
        x = L.MaxPooling1D(2)(x)
        x = L.Conv1D(16, 3, strides=2, padding="same", activation="relu")(x)
        x = L.AveragePooling1D(2, strides=1)(x)
        x = L.Concatenate()([L.GlobalMaxPooling1D()(x), L.GlobalAveragePooling1D()(x)])
        out = L.Dense(10, activation="softmax")(x)
        return K.Model(inp, out, name=name)
    inp = K.Input((28, 28, 1))
    if name == "float_cnn":  # trained on float images in [0, 1]
        x = L.Conv2D(8, 3, activation="relu")(inp)
        x = L.MaxPooling2D()(x)
        x = L.Flatten()(x)
        out = L.Dense(10, activation="softmax")(x)
    elif name == "rescaling_cnn":  # trained on raw 0-255 values; scales itself
        x = L.Rescaling(1.0 / 255)(inp)
        x = L.Conv2D(8, 3, activation="relu")(x)
        x = L.MaxPooling2D()(x)
        x = L.Flatten()(x)
        out = L.Dense(10, activation="softmax")(x)
    elif name == "norm_mlp":  # adapted Normalization on raw values, LeakyReLU and ELU layers
        norm = L.Normalization(axis=None)
        norm.adapt(x_tr_u8[..., None].astype(np.float32))
        x = norm(inp)
        x = L.Flatten()(x)
        x = L.Dense(32)(x)
        x = L.LeakyReLU(0.1)(x)
        x = L.Dense(24)(x)
        x = L.ELU(0.7)(x)
        out = L.Dense(10, activation="softmax")(x)
    elif name == "acts_mlp":  # activation strings
        x = L.Flatten()(inp)
        x = L.Dense(24, activation="gelu")(x)
        x = L.Dense(24, activation="swish")(x)
        x = L.Dense(24, activation="softplus")(x)
        x = L.Dense(24, activation="elu")(x)
        x = L.Dense(16, activation="hard_sigmoid")(x)
        out = L.Dense(10, activation="softmax")(x)
    elif name == "norm01_mlp":  # Normalization adapted on [0, 1] floats: wants the rule's 1/255
        norm = L.Normalization()
        norm.adapt(x_tr_f[..., None])
        x = L.Flatten()(norm(inp))
        x = L.Dense(32, activation="relu")(x)
        out = L.Dense(10, activation="softmax")(x)
    elif name == "onnx_acts_mlp":  # activations tf2onnx writes as single ONNX ops (its hard_sigmoid is a Min/Max clip)
        x = L.Flatten()(inp)
        x = L.Dense(32)(x)
        x = L.LeakyReLU(0.1)(x)
        x = L.Dense(24, activation="softplus")(x)
        x = L.Dense(24, activation="swish")(x)
        x = L.Dense(24, activation="elu")(x)
        out = L.Dense(10, activation="softmax")(x)
    elif name == "pad_concat_cnn":  # ZeroPadding2D before a valid conv; two branches concatenated
        x = L.ZeroPadding2D(((1, 2), (2, 1)))(inp)
        x = L.Conv2D(8, 3, activation="relu")(x)
        a = L.Conv2D(6, 3, padding="same", activation="relu")(x)
        b = L.Conv2D(4, 1, activation="relu")(x)
        x = L.Concatenate()([a, b])
        x = L.MaxPooling2D()(x)
        x = L.Flatten()(x)
        out = L.Dense(10, activation="softmax")(x)
    elif name == "prelu_cnn":  # learned slopes: per channel after a conv, per unit after a Dense
        x = L.Conv2D(8, 3)(inp)
        x = L.PReLU(shared_axes=[1, 2])(x)
        x = L.MaxPooling2D()(x)
        x = L.Flatten()(x)
        x = L.Dense(16)(x)
        x = L.PReLU()(x)
        out = L.Dense(10, activation="softmax")(x)
    elif name == "gmp_cnn":  # GlobalMaxPooling2D after a strided ELU conv
        x = L.Conv2D(8, 3, activation="relu")(inp)
        x = L.Conv2D(16, 3, strides=2, activation="elu")(x)
        x = L.GlobalMaxPooling2D()(x)
        out = L.Dense(10, activation="softmax")(x)
    elif name == "dwsep_cnn":  # depthwise (multipliers 1 and 2) and separable convolutions
        x = L.Conv2D(8, 3, activation="relu")(inp)
        x = L.DepthwiseConv2D(3, activation="relu")(x)
        x = L.SeparableConv2D(16, 3, strides=2, padding="same", activation="relu")(x)
        x = L.DepthwiseConv2D(3, strides=2, depth_multiplier=2, padding="same", activation="relu")(x)
        x = L.Flatten()(x)
        out = L.Dense(10, activation="softmax")(x)
    elif name == "pad_pool_cnn":  # ZeroPadding2D before a max pool (tf2onnx cannot fold it: an ONNX Pad)
        x = L.Conv2D(8, 3, activation="relu")(inp)
        x = L.ZeroPadding2D(((1, 0), (2, 1)))(x)
        x = L.MaxPooling2D()(x)
        x = L.Flatten()(x)
        out = L.Dense(10, activation="softmax")(x)
    else:
        raise ValueError(name)
    return K.Model(inp, out, name=name)


RAW = {"rescaling_cnn", "norm_mlp"}  # fed the stored 0-255 values
EPOCHS = {"conv1d_cnn": 40, "dwsep_cnn": 10, "bidir_lstm": 6, "bidir_seq": 6, "bidir_mul": 6}  # (deeper models, trained on the bundled 1000 images)
ALL = ["float_cnn", "rescaling_cnn", "norm_mlp", "acts_mlp", "gmp_cnn", "norm01_mlp", "onnx_acts_mlp", "pad_concat_cnn", "hsig_lstm", "prelu_cnn", "conv1d_cnn", "dwsep_cnn", "pad_pool_cnn", "bidir_lstm", "bidir_seq", "bidir_mul"]
ap = argparse.ArgumentParser()
ap.add_argument("--only", default=",".join(ALL))
only = ap.parse_args().only.split(",")
report = OUT / "accuracy.json"
accuracy = json.loads(report.read_text()) if report.exists() else {}
for name in [n for n in ALL if n in only]:
    x_train, x_test = (x_tr_u8, x_te_u8) if name in RAW else (x_tr_f, x_te_f)
    channel = (...,) if name == "conv1d_cnn" else (..., None)  # conv1d_cnn reads [28, 28]
    x_train = x_train[channel].astype(np.float32)
    x_test = x_test[channel].astype(np.float32)
    y_train, y_test = y_tr, y_te
    if name == "hsig_lstm" or name.startswith("bidir"):  # token ids as float32 (the bundled text models' convention)
        x_train, y_train = lang["x_train"][:2000].astype(np.float32), lang["y_train"][:2000]
        x_test, y_test = lang["x_test"][:400].astype(np.float32), lang["y_test"][:400]
    for K, suffix in [(keras, ""), (tf_keras, ".k2")]:
        K.utils.set_random_seed(3)
        m = build(K, name)
        m.compile(optimizer=K.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        m.fit(x_train, y_train, epochs=EPOCHS.get(name, 3), batch_size=64, verbose=0)
        acc = float(m.evaluate(x_test, y_test, verbose=0)[1])
        accuracy[name + suffix] = acc
        probs = m.predict(x_test[:64], verbose=0).astype(np.float32)
        np.savez_compressed(OUT / f"{name}{suffix}.expected.npz", x=x_test[:64], probs=probs)
        if K is keras:
            m.save(OUT / f"{name}.keras")
        else:
            m.save(OUT / f"{name}.k2.h5")
            spec = (tf.TensorSpec((None,) + tuple(m.input_shape[1:]), tf.float32, name="input"),)
            tf2onnx.convert.from_keras(m, input_signature=spec, opset=13, output_path=str(OUT / f"{name}.k2.onnx"))
        print(f"{name}{suffix}: test accuracy {acc:.4f}")

(OUT / "accuracy.json").write_text(json.dumps(accuracy, indent=1, sort_keys=True) + "\n")
versions = {"tensorflow": tf.__version__, "keras": keras.__version__, "tf_keras": tf_keras.__version__, "tf2onnx": tf2onnx.__version__}
(OUT / "VERSIONS.json").write_text(json.dumps(versions, indent=1) + "\n")
print(versions)
