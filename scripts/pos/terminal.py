#!/usr/bin/env python3
"""An independent POS terminal for the poslens front end, built on pyiso8583 and the dialect
table in scripts/iso8583/cups_spec.py (written from the spec, not from the Rust code).

  terminal.py --port N [--host 127.0.0.1] [--terminal 10000001] [--merchant 898310048990001]

Runs sign-on -> purchase -> void -> purchase -> purchase + reversal -> batch settlement and
checks every reply (MTI, field 11, 39, and the settlement result digits). Prints one line per
step and exits non-zero on the first surprise. Card numbers are made-up test numbers.
"""
import argparse
import os
import socket
import sys

import iso8583

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "iso8583"))
from cups_spec import SPEC  # noqa: E402

ENVELOPE = "6000030000603100311301"


def luhn_ok(digits):
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def test_pan(seed, last4):
    body = "622202%05d" % (seed % 100000)
    for d in range(10):
        pan = "%s%d%s" % (body, d, last4)
        if luhn_ok(pan):
            return pan
    raise SystemExit("no Luhn digit")


class Terminal:
    def __init__(self, host, port, tid, mid):
        self.sock = socket.create_connection((host, port), timeout=10)
        self.tid, self.mid = tid, mid
        self.stan = 0
        self.batch = 1

    def next_stan(self):
        self.stan += 1
        return "%06d" % self.stan

    def send(self, mti, fields):
        doc = {"h": ENVELOPE, "t": mti}
        doc.update({str(k): v for k, v in fields.items()})
        raw, _ = iso8583.encode(doc, SPEC)
        self.sock.sendall(len(raw).to_bytes(2, "big") + bytes(raw))

    def recv(self):
        def exactly(n):
            buf = b""
            while len(buf) < n:
                chunk = self.sock.recv(n - len(buf))
                if not chunk:
                    raise SystemExit("host closed the connection")
                buf += chunk
            return buf

        n = int.from_bytes(exactly(2), "big")
        dec, _ = iso8583.decode(bytearray(exactly(n)), SPEC)
        return dec

    def ask(self, mti, fields, want="00"):
        self.send(mti, fields)
        r = self.recv()
        expect_mti = "%04d" % (int(mti) + 10)
        if r["t"] != expect_mti:
            raise SystemExit("expected MTI %s, got %s" % (expect_mti, r["t"]))
        if fields.get(11) and r.get("11") != fields[11]:
            raise SystemExit("field 11 %s does not echo %s" % (r.get("11"), fields[11]))
        if r.get("39") != want:
            raise SystemExit("%s: expected 39=%s, got %s" % (mti, want, r.get("39")))
        return r

    def ids(self):
        return {41: self.tid.ljust(8), 42: self.mid.ljust(15)}

    def financial(self, code3, code601, pan, amount, extra=None, stan=None):
        f = {
            2: pan, 3: code3, 4: "%012d" % amount, 11: stan or self.next_stan(), 14: "3012", 22: "012",
            25: "00", 49: "156", 60: "%s%06d000" % (code601, self.batch),
        }
        f.update(self.ids())
        f.update(extra or {})
        return f


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--terminal", default="10000001")
    ap.add_argument("--merchant", default="898310048990001")
    a = ap.parse_args()
    t = Terminal(a.host, a.port, a.terminal, a.merchant)

    f = {11: t.next_stan(), 60: "00000000003", 63: "001"}
    f.update(t.ids())
    r = t.ask("0800", f)
    t.batch = int(r["60"][2:8])
    print("sign-on ok, batch %06d" % t.batch)

    pan = test_pan(42, "1234")
    p1 = t.financial("000000", "22", pan, 1000)
    r1 = t.ask("0200", p1)
    print("purchase ok, rrn %s" % r1["37"])

    void = t.financial("200000", "23", pan, 1000, {37: r1["37"], 38: r1["38"], 61: "%06d%s%s" % (t.batch, p1[11], r1["13"])})
    t.ask("0200", void)
    print("void ok")

    p2 = t.financial("000000", "22", pan, 2000)
    t.ask("0200", p2)
    print("purchase ok")

    p3 = t.financial("000000", "22", pan, 3000)
    t.ask("0200", p3)
    rev = dict(p3)
    rev[39] = "98"
    r = t.ask("0400", rev)
    print("reversal ok, rrn %s" % r["37"])

    totals = "%012d%03d%012d%03d0" % (2000, 1, 0, 0) + "0" * 31
    f = {11: t.next_stan(), 48: totals, 49: "156", 60: "00%06d201" % t.batch, 63: "001"}
    f.update(t.ids())
    r = t.ask("0500", f)
    result = r["48"][30] + r["48"][61]
    if result != "11":
        raise SystemExit("settlement not balanced: result digits %s" % result)
    print("settlement balanced")


if __name__ == "__main__":
    main()
