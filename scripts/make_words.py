#!/usr/bin/env python3
"""Words of five languages, for classifying a word's language from its letters. Reads Debian's
word lists (packages wamerican, wngerman, wfrench, witalian, wspanish, in /usr/share/dict), keeps
the lowercase words of 3 to 16 letters that appear in exactly one list, and draws a seeded sample
of each language (3,000 training and 600 test words) into data/words/:

  train-letters.npy, test-letters.npy    float32 (n, 16): each letter's id (1..), 0 after the word
  train-languages.npy, test-languages.npy  int64 (n,): 0 english, 1 german, 2 french, 3 italian,
                                           4 spanish
  alphabet.txt, languages.txt            the letters in id order, the languages in label order

With the standard library only; the same seed gives the same files. Does nothing if they exist.
Usage: scripts/make_words.py [OUTPUT_DIR] [SEED]"""
import os
import random
import struct
import sys

LISTS = [("english", "american-english", "wamerican"), ("german", "ngerman", "wngerman"),
         ("french", "french", "wfrench"), ("italian", "italian", "witalian"), ("spanish", "spanish", "wspanish")]
LENGTH, TRAIN, TEST = 16, 3000, 600


def npy(path, descr, shape, data):
    header = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, shape)
    header += " " * ((64 - (10 + len(header) + 1) % 64) % 64) + "\n"
    tmp = f"{path}.{os.getpid()}.tmp"  # whole files only, even when two runs race
    with open(tmp, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + data)
    os.replace(tmp, path)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.normpath(os.path.join(here, "..", "data", "words"))
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    if os.path.exists(os.path.join(out, "test-languages.npy")):
        return
    words = []
    for name, file, package in LISTS:
        path = os.path.join("/usr/share/dict", file)
        if not os.path.exists(path):
            sys.exit(f"{path} is missing: install Debian's {package} (apt-get install {package})")
        with open(path, encoding="utf-8") as f:
            words.append({w for w in (line.strip() for line in f)
                          if 3 <= len(w) <= LENGTH and w.isalpha() and w == w.lower()})
    seen = {}
    for ws in words:
        for w in ws:
            seen[w] = seen.get(w, 0) + 1
    # Letters that at least 20 kept words use; words with a rarer one are left out.
    kept = [sorted(w for w in ws if seen[w] == 1) for ws in words]
    counts = {}
    for ws in kept:
        for w in ws:
            for c in set(w):
                counts[c] = counts.get(c, 0) + 1
    alphabet = sorted(c for c, n in counts.items() if n >= 20)
    ids = {c: i + 1 for i, c in enumerate(alphabet)}
    assert len(alphabet) < 64, f"{len(alphabet)} letters: the examples' embeddings hold 63"
    rng = random.Random(seed)
    parts = {"train": [], "test": []}
    for label, ws in enumerate(kept):
        ws = [w for w in ws if all(c in ids for c in w)]
        sample = rng.sample(ws, TRAIN + TEST)
        parts["train"] += [(w, label) for w in sample[:TRAIN]]
        parts["test"] += [(w, label) for w in sample[TRAIN:]]
    os.makedirs(out, exist_ok=True)
    for part, rows in parts.items():
        rng.shuffle(rows)
        letters = []
        for w, _ in rows:
            letters += [float(ids[c]) for c in w] + [0.0] * (LENGTH - len(w))
        npy(os.path.join(out, f"{part}-letters.npy"), "<f4", f"({len(rows)}, {LENGTH})",
            struct.pack(f"<{len(letters)}f", *letters))
        npy(os.path.join(out, f"{part}-languages.npy"), "<i8", f"({len(rows)},)",
            struct.pack(f"<{len(rows)}q", *[label for _, label in rows]))
    with open(os.path.join(out, "alphabet.txt"), "w", encoding="utf-8") as f:
        f.write("".join(alphabet) + "\n")
    with open(os.path.join(out, "languages.txt"), "w") as f:
        f.write("\n".join(name for name, _, _ in LISTS) + "\n")
    print(f"wrote {len(parts['train'])} training and {len(parts['test'])} test words of {len(LISTS)} languages, "
          f"{len(alphabet)} letters, to {out}")


main()
