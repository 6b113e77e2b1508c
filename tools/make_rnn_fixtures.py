#!/usr/bin/env python3
"""Write the tiny recurrent-layer Keras fixtures in tests/fixtures/keras/.

    /opt/mlvenv/bin/python tools/make_rnn_fixtures.py     # a few seconds

Needs TensorFlow 2.21 + Keras 3 (for `.keras` and Keras-3 legacy `.h5`) and
tf_keras (for Keras-2 `.h5`).  The models are NOT trained: every weight is set
from a seeded uniform distribution (biases included, so they are nonzero), and
the inputs are seeded random token ids / vectors.  Each fixture has
`<stem>.expected.npz` with

    x      float32  (N, T) token ids, or (N, T, F) vectors
    probs  float32  the Keras output on x: (N, classes) or (N, T, classes)

After writing, every file is re-loaded with Keras (must reproduce `probs`) and
run through tools/reference_forward.py (plain numpy, h5py), which must match to
1e-5, so the weight layout described there is checked against real files.

The fixtures (V = 12 token ids, T = 7 steps, 3 classes):

    simple_rnn              Embedding(12,4) -> SimpleRNN(5) -> Dense(3, softmax)
    simple_rnn_relu         Embedding(12,4) -> SimpleRNN(5, activation="relu") -> Dense(3, softmax)
    lstm                    Embedding(12,4) -> LSTM(5) -> Dense(3, softmax)
    gru                     Embedding(12,4) -> GRU(5)   (reset_after=True, the default) -> Dense(3, softmax)
    gru_reset_before        Embedding(12,4) -> GRU(5, reset_after=False) -> Dense(3, softmax)
    lstm_gru_stacked        Embedding(12,4) -> LSTM(6, return_sequences=True) -> GRU(5) -> Dense(3, softmax)
    lstm_vectors            Input (7, 3) float vectors -> LSTM(5) -> Dense(3, softmax)
    lstm_seq2seq            Embedding(12,4) -> LSTM(5, return_sequences=True)
                            -> TimeDistributed(Dense(3, softmax))          probs (N, 7, 3)
    lstm_gru_stacked.h5     the same model/weights as lstm_gru_stacked.keras, legacy HDF5 by Keras 3
    lstm_seq2seq.h5         the same model/weights as lstm_seq2seq.keras, legacy HDF5 by Keras 3
    keras2_stacked.h5       tf_keras (Keras 2): Embedding(12,4) -> SimpleRNN(6, return_sequences=True)
                            -> LSTM(6, return_sequences=True) -> GRU(5) -> Dense(3, softmax)
    keras2_seq2seq.h5       tf_keras (Keras 2): Embedding(12,4) -> LSTM(5, return_sequences=True)
                            -> TimeDistributed(Dense(3, softmax))

Every model is functional (keras.Model(inputs, outputs)), input dtype float32.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("PYTHONHASHSEED", "0")

import sys  # noqa: E402

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, ".."))
OUT = os.path.join(ROOT, "tests", "fixtures", "keras")
sys.path.insert(0, HERE)
from build_data import write_npz  # noqa: E402  (deterministic npz writer)
import reference_forward  # noqa: E402

V, T, F, E, CLASSES, N = 12, 7, 3, 4, 3, 5


def tokens(seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, V, size=(N, T)).astype(np.float32)
    x[0, :3] = [0, 1, V - 1]          # pad id, <unk> id and the last id all occur
    return x


def vectors(seed):
    return np.random.default_rng(seed).normal(0.0, 1.0, size=(N, T, F)).astype(np.float32)


def randomise(model, seed, scale=0.7):
    """Every weight ~ U(-scale, scale), seeded (embedding rows U(-1, 1))."""
    rng = np.random.default_rng(seed)
    ws = []
    for w in model.get_weights():
        s = 1.0 if w.ndim == 2 and w.shape == (V, E) else scale
        ws.append(rng.uniform(-s, s, size=w.shape).astype(np.float32))
    model.set_weights(ws)


def keras3_models():
    import keras
    from keras import layers

    def tok_input():
        return keras.Input(shape=(T,), name="tokens")

    def emb(x):
        return layers.Embedding(V, E, name="embedding")(x)

    def head(x):
        return layers.Dense(CLASSES, activation="softmax", name="dense")(x)

    def simple_rnn():
        i = tok_input()
        return keras.Model(i, head(layers.SimpleRNN(5, name="simple_rnn")(emb(i))), name="simple_rnn")

    def simple_rnn_relu():
        i = tok_input()
        h = layers.SimpleRNN(5, activation="relu", name="simple_rnn")(emb(i))
        return keras.Model(i, head(h), name="simple_rnn_relu")

    def lstm():
        i = tok_input()
        return keras.Model(i, head(layers.LSTM(5, name="lstm")(emb(i))), name="lstm")

    def gru():
        i = tok_input()
        return keras.Model(i, head(layers.GRU(5, name="gru")(emb(i))), name="gru")

    def gru_reset_before():
        i = tok_input()
        h = layers.GRU(5, reset_after=False, name="gru")(emb(i))
        return keras.Model(i, head(h), name="gru_reset_before")

    def lstm_gru_stacked():
        i = tok_input()
        h = layers.LSTM(6, return_sequences=True, name="lstm")(emb(i))
        h = layers.GRU(5, name="gru")(h)
        return keras.Model(i, head(h), name="lstm_gru_stacked")

    def lstm_vectors():
        i = keras.Input(shape=(T, F), name="vectors")
        return keras.Model(i, head(layers.LSTM(5, name="lstm")(i)), name="lstm_vectors")

    def lstm_seq2seq():
        i = tok_input()
        h = layers.LSTM(5, return_sequences=True, name="lstm")(emb(i))
        o = layers.TimeDistributed(layers.Dense(CLASSES, activation="softmax", name="dense"),
                                   name="time_distributed")(h)
        return keras.Model(i, o, name="lstm_seq2seq")

    # stem, builder, input maker, seed, also save as Keras-3 legacy .h5
    return [
        ("simple_rnn", simple_rnn, tokens, 101, False),
        ("simple_rnn_relu", simple_rnn_relu, tokens, 102, False),
        ("lstm", lstm, tokens, 103, False),
        ("gru", gru, tokens, 104, False),
        ("gru_reset_before", gru_reset_before, tokens, 105, False),
        ("lstm_gru_stacked", lstm_gru_stacked, tokens, 106, True),
        ("lstm_vectors", lstm_vectors, vectors, 107, False),
        ("lstm_seq2seq", lstm_seq2seq, tokens, 108, True),
    ]


def keras2_models():
    import tf_keras as k2
    L = k2.layers

    def stacked():
        i = k2.Input(shape=(T,), name="tokens")
        h = L.Embedding(V, E, name="embedding")(i)
        h = L.SimpleRNN(6, return_sequences=True, name="simple_rnn")(h)
        h = L.LSTM(6, return_sequences=True, name="lstm")(h)
        h = L.GRU(5, name="gru")(h)
        o = L.Dense(CLASSES, activation="softmax", name="dense")(h)
        return k2.Model(i, o, name="keras2_stacked")

    def seq2seq():
        i = k2.Input(shape=(T,), name="tokens")
        h = L.Embedding(V, E, name="embedding")(i)
        h = L.LSTM(5, return_sequences=True, name="lstm")(h)
        o = L.TimeDistributed(L.Dense(CLASSES, activation="softmax", name="dense"),
                              name="time_distributed")(h)
        return k2.Model(i, o, name="keras2_seq2seq")

    return [("keras2_stacked", stacked, tokens, 201), ("keras2_seq2seq", seq2seq, tokens, 202)]


def check_reference(path, x, probs):
    layers_ = reference_forward.load_model(path)
    got = reference_forward.forward(layers_, x)
    diff = float(np.max(np.abs(got - probs)))
    assert diff < 1e-5, (path, diff)
    return diff


def main():
    os.makedirs(OUT, exist_ok=True)
    import keras
    import tf_keras

    written = []
    for stem, build, make_x, seed, h5 in keras3_models():
        keras.utils.set_random_seed(seed)
        model = build()
        randomise(model, seed)
        x = make_x(seed)
        probs = np.asarray(model.predict(x, verbose=0), dtype=np.float32)
        write_npz(os.path.join(OUT, f"{stem}.expected.npz"), [("x", x), ("probs", probs)])
        paths = [os.path.join(OUT, f"{stem}.keras")]
        model.save(paths[0])
        if h5:
            paths.append(os.path.join(OUT, f"{stem}.h5"))
            model.save(paths[1])
        for p in paths:
            re = keras.models.load_model(p)
            assert float(np.max(np.abs(re.predict(x, verbose=0) - probs))) < 1e-6, p
            written.append((p, check_reference(p, x, probs), probs.shape))

    for stem, build, make_x, seed in keras2_models():
        tf_keras.utils.set_random_seed(seed)
        model = build()
        randomise(model, seed)
        x = make_x(seed)
        probs = np.asarray(model.predict(x, verbose=0), dtype=np.float32)
        write_npz(os.path.join(OUT, f"{stem}.expected.npz"), [("x", x), ("probs", probs)])
        p = os.path.join(OUT, f"{stem}.h5")
        model.save(p, save_format="h5")
        re = tf_keras.models.load_model(p)
        assert float(np.max(np.abs(re.predict(x, verbose=0) - probs))) < 1e-6, p
        written.append((p, check_reference(p, x, probs), probs.shape))

    for p, d, shape in written:
        print(f"{os.path.relpath(p, ROOT):45s} {os.path.getsize(p):7d} bytes  probs {shape}  "
              f"max |numpy - keras| = {d:.1e}")


if __name__ == "__main__":
    main()
