#!/usr/bin/env python3
"""Print the internal layout of a Keras model file (needs h5py + numpy only).

    python tools/inspect_model.py models/digits_mlp.keras [--config]
    python tools/inspect_model.py models/digits_mlp.h5

For a Keras 3 `.keras` archive: the zip entries (with sizes, compression and
timestamps), optionally config.json (pretty-printed), metadata.json and the
HDF5 tree of model.weights.h5.  For an `.h5` file: its HDF5 tree, with
attributes (long JSON attributes such as model_config are shortened).
"""

import argparse
import io
import json
import zipfile

import h5py
import numpy as np


def fmt_attr(v, limit):
    if isinstance(v, bytes):
        v = v.decode("utf-8", "replace")
    if isinstance(v, np.ndarray):
        v = [x.decode("utf-8", "replace") if isinstance(x, bytes) else x for x in v.tolist()]
    s = repr(v)
    return s if len(s) <= limit else s[:limit] + f"... ({len(s)} chars)"


def h5_tree(f, limit):
    def show(name, obj):
        depth = name.count("/")
        pad = "  " * depth
        base = name.rsplit("/", 1)[-1]
        if isinstance(obj, h5py.Dataset):
            print(f"{pad}{base}  dataset shape={obj.shape} dtype={obj.dtype}"
                  f" chunks={obj.chunks} compression={obj.compression}")
        else:
            print(f"{pad}{base}/")
        for k, v in obj.attrs.items():
            print(f"{pad}  @{k} = {fmt_attr(v, limit)}")
    for k, v in f.attrs.items():
        print(f"@{k} = {fmt_attr(v, limit)}")
    f.visititems(show)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("path")
    ap.add_argument("--config", action="store_true", help="print config.json in full")
    ap.add_argument("--attr-limit", type=int, default=200)
    args = ap.parse_args()
    if zipfile.is_zipfile(args.path):
        z = zipfile.ZipFile(args.path)
        print("zip entries:")
        for i in z.infolist():
            kind = {0: "stored", 8: "deflated"}.get(i.compress_type, i.compress_type)
            print(f"  {i.filename:20s} {i.file_size:8d} bytes  {kind}  header_offset={i.header_offset}"
                  f"  {i.date_time}")
        print("metadata.json:", z.read("metadata.json").decode())
        if args.config:
            print("config.json:")
            print(json.dumps(json.loads(z.read("config.json")), indent=2))
        print("model.weights.h5:")
        with h5py.File(io.BytesIO(z.read("model.weights.h5")), "r") as f:
            h5_tree(f, args.attr_limit)
    else:
        with h5py.File(args.path, "r") as f:
            h5_tree(f, args.attr_limit)


if __name__ == "__main__":
    main()
