#!/usr/bin/env python3
"""pyiso8583 timing of the frames the Rust criterion bench uses (same vectors, same spec).

  bench_py.py VECTORS_DIR   prints JSON {"decode/0200_purchase": ns_per_op, ...}
"""
import json
import os
import sys
import timeit

import iso8583

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cups_spec import SPEC  # noqa: E402

CASES = [
    ("0200_purchase", "purchase.json", "0200_purchase_track2_37"),
    ("0210_purchase", "purchase.json", "0210_purchase_track2_ok"),
]


def main(vectors_dir):
    out = {}
    for label, file, name in CASES:
        with open(os.path.join(vectors_dir, file)) as f:
            v = next(x for x in json.load(f)["vectors"] if x["name"] == name)
        body = bytes.fromhex(v["wire_hex"])[2:]
        doc, _ = iso8583.decode(body, SPEC)
        doc = {k: val for k, val in doc.items() if k != "p"}
        for op, fn in (("decode", lambda: iso8583.decode(body, SPEC)), ("encode", lambda: iso8583.encode(dict(doc), SPEC))):
            n = 20000
            best = min(timeit.repeat(fn, number=n, repeat=5))
            out[f"{op}/{label}"] = best / n * 1e9
    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main(sys.argv[1])
