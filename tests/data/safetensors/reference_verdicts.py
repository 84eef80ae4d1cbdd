#!/usr/bin/env python3
"""The verdict of the safetensors reference library on every .safetensors file of some folders.

    python3 reference_verdicts.py ROOT DIR...           prints "path<TAB>accept|refuse<TAB>message"
    python3 reference_verdicts.py ROOT DIR... --write   also writes reference.tsv beside this script
    python3 reference_verdicts.py ROOT DIR... --check   compares with reference.tsv (exit 1 on any
                                                        difference in verdict)

Paths are relative to ROOT (the repository). Exit 77 (a skip for CTest) when the `safetensors`
package cannot be imported. A file is accepted when safe_open reads its header and metadata and
every tensor's shape can be sliced out of it, as a loader would.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TSV = os.path.join(HERE, "reference.tsv")

try:
    import numpy  # noqa: F401  safe_open(framework="numpy") needs it; without it every file
    import safetensors  # would be "refused" for a reason that has nothing to do with the file
    from safetensors import safe_open
except ImportError as e:
    print(f"SKIP: the Python safetensors or numpy package is not installed ({e}); "
          "`pip install safetensors numpy` and rerun to re-derive reference.tsv", file=sys.stderr)
    sys.exit(77)


def verdict(path):
    try:
        with safe_open(path, framework="numpy") as f:
            f.metadata()
            for k in f.keys():
                f.get_slice(k).get_shape()
        return "accept", ""
    except Exception as e:  # the library raises SafetensorError, OSError, ValueError, ...
        return "refuse", " ".join(str(e).split())[:160]


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    root, folders = args[0], args[1:]
    rows = []
    for folder in folders:
        for name in sorted(os.listdir(os.path.join(root, folder))):
            if name.endswith(".safetensors"):
                rel = os.path.join(folder, name)
                v, msg = verdict(os.path.join(root, rel))
                rows.append((rel, v, msg))
    text = (f"# the verdict of safetensors {safetensors.__version__} (Python) on each file; "
            "written by reference_verdicts.py --write\n")
    text += "".join(f"{p}\t{v}\t{m}\n" for p, v, m in rows)
    if "--check" not in sys.argv:
        sys.stdout.write(text)
    if "--write" in sys.argv:
        with open(TSV + ".tmp", "w") as f:
            f.write(text)
        os.replace(TSV + ".tmp", TSV)
    if "--check" in sys.argv:
        recorded = {}
        for line in open(TSV):
            if not line.startswith("#"):
                p, v = line.rstrip("\n").split("\t")[:2]
                recorded[p] = v
        diff = [(p, recorded.get(p), v) for p, v, _ in rows if recorded.get(p) != v]
        for p, old, new in diff:
            print(f"FAIL: {p}: reference.tsv says {old}, safetensors "
                  f"{safetensors.__version__} says {new}", file=sys.stderr)
        missing = set(recorded) - {p for p, _, _ in rows}
        for p in sorted(missing):
            print(f"FAIL: {p} is in reference.tsv but not on disk", file=sys.stderr)
        if diff or missing:
            sys.exit(1)
        print(f"{len(rows)} files: every verdict of safetensors {safetensors.__version__} "
              "matches reference.tsv", file=sys.stderr)


main()
