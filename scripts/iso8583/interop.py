#!/usr/bin/env python3
"""pyiso8583 side of the iso8583 crate's interop test.

  interop.py gen VECTORS_DIR SEED PER_TEMPLATE
      For every vector (each message type of the dialect), PER_TEMPLATE random messages with the
      same MTI, envelope and field set but random valid values, encoded by pyiso8583. Prints a
      JSON list of {template, mti, tpdu_header_hex, fields, wire_hex}.
  interop.py check < messages.json
      Decodes each {mti, tpdu_header_hex, fields, wire_hex} (encoded by Rust) with pyiso8583 and
      compares mti, envelope and fields, then re-encodes and compares bytes. Prints
      {"checked": N, "mismatches": [...]}; exit status 1 on any mismatch.
"""
import json
import os
import random
import sys

import iso8583

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cups_spec import SPEC, random_value  # noqa: E402


def templates(vectors_dir):
    out = []
    for name in sorted(os.listdir(vectors_dir)):
        if not name.endswith(".json") or name == "malformed.json":
            continue
        with open(os.path.join(vectors_dir, name)) as f:
            for v in json.load(f)["vectors"]:
                out.append((name + "/" + v["name"], v["mti"], v["tpdu_header_hex"], sorted(int(k) for k in v["fields"])))
    return out


def encode(mti, envelope, fields):
    doc = {"h": envelope.upper(), "t": mti}
    doc.update({str(k): v for k, v in fields.items()})
    raw, _ = iso8583.encode(doc, SPEC)
    return len(raw).to_bytes(2, "big") + bytes(raw)


def gen(vectors_dir, seed, per_template):
    rng = random.Random(seed)
    out = []
    for template, mti, envelope, field_numbers in templates(vectors_dir):
        for _ in range(per_template):
            fields = {str(n): random_value(rng, n) for n in field_numbers}
            out.append({
                "template": template,
                "mti": mti,
                "tpdu_header_hex": envelope.upper(),
                "fields": fields,
                "wire_hex": encode(mti, envelope, fields).hex().upper(),
            })
    json.dump(out, sys.stdout)


def check():
    messages = json.load(sys.stdin)
    mismatches = []
    for m in messages:
        wire = bytes.fromhex(m["wire_hex"])
        try:
            if int.from_bytes(wire[:2], "big") != len(wire) - 2:
                raise ValueError("length prefix")
            dec, _ = iso8583.decode(wire[2:], SPEC)
            got = {k: v for k, v in dec.items() if k not in ("h", "t", "p")}
            problems = []
            if dec["t"] != m["mti"]:
                problems.append(f"mti {dec['t']}")
            if dec["h"] != m["tpdu_header_hex"].upper():
                problems.append(f"envelope {dec['h']}")
            if got != m["fields"]:
                problems.append(f"fields {got}")
            if encode(m["mti"], m["tpdu_header_hex"], m["fields"]) != wire:
                problems.append("re-encoding differs")
            if problems:
                mismatches.append({"wire_hex": m["wire_hex"], "problems": problems})
        except Exception as e:  # a decode error is a mismatch too
            mismatches.append({"wire_hex": m["wire_hex"], "problems": [repr(e)]})
    json.dump({"checked": len(messages), "mismatches": mismatches[:20]}, sys.stdout)
    sys.exit(1 if mismatches else 0)


if __name__ == "__main__":
    if sys.argv[1] == "gen":
        gen(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif sys.argv[1] == "check":
        check()
    else:
        sys.exit(f"unknown command {sys.argv[1]}")
