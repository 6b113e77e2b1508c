#!/usr/bin/env python3
"""Train the small bundled Keras 3 models in models/ from the bundled data in data/.

Run with a Python that has TensorFlow + Keras 3 + h5py (e.g. /opt/mlvenv/bin/python):

    python tools/train_models.py            # all models, ~1 minute on 2 cores

Input preprocessing convention (the Rust loader and the web page must match it)
------------------------------------------------------------------------------
* Every digits/clothing model takes ONE input of shape (28, 28, 1), i.e. a batch
  is N x 28 x 28 x 1 (NHWC, channels last), dtype float32.
* Pixel values are the raw uint8 values from data/*.npz divided by 255.0, so
  they lie in [0, 1] (0 = background, 1 = full ink).  No mean/std
  normalisation, no inversion, no padding.
* Dense MLPs start with a Flatten layer (row-major over 28 x 28 x 1, i.e. the
  flattened index is row * 28 + col) so they take the same input shape as the
  CNN.
* Outputs are softmax probabilities over the 10 classes, in the order of the
  data set's `class_names`.

Models written (all with seeded, single-process deterministic training):

    digits_mlp.keras         Flatten -> Dense(64,relu) -> Dense(64,relu) -> Dense(10,softmax)   seed 1
    digits_mlp.h5            the same model saved in the legacy HDF5 format by Keras 3
    digits_mlp_b.keras       Flatten -> Dense(96,relu) -> Dense(48,relu) -> Dense(10,softmax)   seed 2
    digits_mlp_faulty.keras  as digits_mlp, but 60% of the training 7s relabelled as 1      seed 3
    clothing_mlp.keras       as digits_mlp, trained on Fashion-MNIST (clothing.npz)          seed 4
    digits_cnn.keras         Conv2D(8,3)->MaxPool(2)->Conv2D(16,3)->MaxPool(2)->Flatten
                             -> Dense(32,relu) -> Dense(10,softmax)                           seed 5

For every model also `<name>.expected.npz` (deterministic zip, see
tools/build_data.py) with
    x       float32 (16, 28, 28, 1)  first 16 test images, preprocessed as above
    y       uint8   (16,)            their true labels
    probs   float32 (16, 10)         the Keras model's output on x
and models/train_report.json with test accuracy, per-class accuracy and
parameter count for each model file.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ["TF_DETERMINISTIC_OPS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("PYTHONHASHSEED", "0")

import json  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

tf.config.threading.set_inter_op_parallelism_threads(1)
tf.config.threading.set_intra_op_parallelism_threads(2)
tf.config.experimental.enable_op_determinism()

import keras  # noqa: E402
from keras import layers  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, ".."))
sys.path.insert(0, HERE)
from build_data import write_npz  # noqa: E402  (deterministic npz writer)

DATA = os.path.join(ROOT, "data")
MODELS = os.path.join(ROOT, "models")
EPOCHS = 5
BATCH = 64
N_EXPECTED = 16


def load(name):
    d = np.load(os.path.join(DATA, f"{name}.npz"), allow_pickle=False)
    names = json.loads(bytes(d["class_names"]).decode("utf-8"))
    return (d["x_train"], d["y_train"].astype(np.int64),
            d["x_test"], d["y_test"].astype(np.int64), names)


def preprocess(x_uint8):
    """uint8 (N,28,28) -> float32 (N,28,28,1) in [0,1]."""
    return (x_uint8.astype(np.float32) / np.float32(255.0))[..., None]


def mlp(h1, h2, name):
    inp = keras.Input(shape=(28, 28, 1), name="input")
    x = layers.Flatten(name="flatten")(inp)
    x = layers.Dense(h1, activation="relu", name="dense_1")(x)
    x = layers.Dense(h2, activation="relu", name="dense_2")(x)
    out = layers.Dense(10, activation="softmax", name="dense_3")(x)
    return keras.Model(inp, out, name=name)


def cnn(name):
    inp = keras.Input(shape=(28, 28, 1), name="input")
    x = layers.Conv2D(8, 3, activation="relu", padding="valid", name="conv2d_1")(inp)
    x = layers.MaxPooling2D(2, name="max_pooling2d_1")(x)
    x = layers.Conv2D(16, 3, activation="relu", padding="valid", name="conv2d_2")(x)
    x = layers.MaxPooling2D(2, name="max_pooling2d_2")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(32, activation="relu", name="dense_1")(x)
    out = layers.Dense(10, activation="softmax", name="dense_2")(x)
    return keras.Model(inp, out, name=name)


def corrupt_sevens(y, fraction, seed):
    """Relabel `fraction` of the training 7s as 1 (chosen with a seeded RNG)."""
    y = y.copy()
    sevens = np.flatnonzero(y == 7)
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(sevens, size=int(round(fraction * len(sevens))), replace=False))
    y[pick] = 1
    return y, len(pick)


SPECS = [
    # file stem, data set, seed, builder, label corruption
    ("digits_mlp", "digits", 1, lambda: mlp(64, 64, "digits_mlp"), None),
    ("digits_mlp_b", "digits", 2, lambda: mlp(96, 48, "digits_mlp_b"), None),
    ("digits_mlp_faulty", "digits", 3, lambda: mlp(64, 64, "digits_mlp_faulty"), 0.6),
    ("clothing_mlp", "clothing", 4, lambda: mlp(64, 64, "clothing_mlp"), None),
    ("digits_cnn", "digits", 5, lambda: cnn("digits_cnn"), None),
]


def main():
    os.makedirs(MODELS, exist_ok=True)
    data = {name: load(name) for name in ("digits", "clothing")}
    report = {
        "_meta": {
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "numpy": np.__version__,
            "epochs": EPOCHS,
            "batch_size": BATCH,
            "optimizer": "adam (default lr 1e-3)",
            "preprocessing": "x/255 as float32, shape (N,28,28,1)",
            "test_set": "1000 images (100/class) from data/<dataset>.npz",
        }
    }
    for stem, ds, seed, build, corrupt in SPECS:
        xtr_u8, ytr, xte_u8, yte, _names = data[ds]
        xtr, xte = preprocess(xtr_u8), preprocess(xte_u8)
        notes = None
        if corrupt is not None:
            ytr, n = corrupt_sevens(ytr, corrupt, seed)
            notes = f"{n} of {int((data[ds][1] == 7).sum())} training 7s relabelled as 1"
        keras.utils.set_random_seed(seed)
        model = build()
        model.compile(optimizer=keras.optimizers.Adam(),
                      loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        model.fit(xtr, ytr, epochs=EPOCHS, batch_size=BATCH, shuffle=True, verbose=0)
        _, acc = model.evaluate(xte, yte, batch_size=250, verbose=0)
        pred = np.argmax(model.predict(xte, batch_size=250, verbose=0), axis=1)
        per_class = [float(np.mean(pred[yte == c] == c)) for c in range(10)]

        # Save a freshly built, never-compiled copy: no optimizer state (Adam's
        # moments would triple the file size) and no compile config, only
        # architecture + weights.  (keras.models.clone_model keeps the compile
        # state in Keras 3.15, so it is not used here.)
        clean = build()
        clean.set_weights(model.get_weights())
        path = os.path.join(MODELS, f"{stem}.keras")
        clean.save(path)
        x16 = xte[:N_EXPECTED]
        probs = np.asarray(model.predict(x16, verbose=0), dtype=np.float32)
        write_npz(os.path.join(MODELS, f"{stem}.expected.npz"),
                  [("x", x16), ("y", yte[:N_EXPECTED].astype(np.uint8)), ("probs", probs)])

        # Round-trip check: the saved file must reproduce the in-memory outputs.
        files = [path]
        if stem == "digits_mlp":
            h5 = os.path.join(MODELS, f"{stem}.h5")
            clean.save(h5)
            files.append(h5)
        for f in files:
            re = keras.models.load_model(f)
            diff = float(np.max(np.abs(re.predict(x16, verbose=0) - probs)))
            assert diff < 1e-6, (f, diff)

        entry = {
            "dataset": ds,
            "seed": seed,
            "test_accuracy": round(float(acc), 4),
            "per_class_accuracy": [round(a, 4) for a in per_class],
            "params": int(model.count_params()),
        }
        if notes:
            entry["notes"] = notes
        report[f"{stem}.keras"] = entry
        if stem == "digits_mlp":
            report[f"{stem}.h5"] = dict(entry, notes="same weights as digits_mlp.keras, "
                                        "legacy HDF5 format written by Keras 3")
        print(f"{stem:20s} {ds:9s} params {entry['params']:6d}  test acc {acc:.4f}  "
              f"per-class {' '.join(f'{a:.2f}' for a in per_class)}", flush=True)

    with open(os.path.join(MODELS, "train_report.json"), "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    print("wrote", os.path.join(MODELS, "train_report.json"))


if __name__ == "__main__":
    main()
