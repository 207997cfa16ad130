"""The CUPS POS dialect (shared/spec/ISO8583-CUPS.md section 2) as a pyiso8583 4.0.1 spec.

Written from the spec document, independently of the Rust field table, so that the interop
test compares two implementations of the same text.
"""

# field: (format, length kind, max/fixed length, align) -- lengths in digits for n/z, bytes else
FIELDS = {
    2: ("n", "LL", 19, "left"),
    3: ("n", "fixed", 6, "left"),
    4: ("n", "fixed", 12, "left"),
    11: ("n", "fixed", 6, "left"),
    12: ("n", "fixed", 6, "left"),
    13: ("n", "fixed", 4, "left"),
    14: ("n", "fixed", 4, "left"),
    15: ("n", "fixed", 4, "left"),
    22: ("n", "fixed", 3, "left"),
    23: ("n", "fixed", 3, "right"),
    25: ("n", "fixed", 2, "left"),
    26: ("n", "fixed", 2, "left"),
    32: ("n", "LL", 11, "left"),
    35: ("z", "LL", 37, "left"),
    36: ("z", "LLL", 104, "left"),
    37: ("an", "fixed", 12, "left"),
    38: ("an", "fixed", 6, "left"),
    39: ("an", "fixed", 2, "left"),
    41: ("ans", "fixed", 8, "left"),
    42: ("ans", "fixed", 15, "left"),
    44: ("ans", "LL", 25, "left"),
    48: ("n", "LLL", 322, "left"),
    49: ("an", "fixed", 3, "left"),
    52: ("b", "fixed", 8, "left"),
    53: ("n", "fixed", 16, "left"),
    55: ("b", "LLL", 255, "left"),
    60: ("n", "LLL", 17, "left"),
    61: ("n", "LLL", 29, "left"),
    62: ("b", "LLL", 512, "left"),
    63: ("ans", "LLL", 163, "left"),
    64: ("b", "fixed", 8, "left"),
}


def _field_spec(fmt, kind, length, align):
    len_type = {"fixed": 0, "LL": 1, "LLL": 2}[kind]
    spec = {"len_enc": "bcd", "len_type": len_type, "max_len": length, "desc": ""}
    if fmt in ("n", "z"):
        spec["data_enc"] = "b"
        spec["len_count"] = "nibbles"
        if align == "left":
            spec["right_pad"] = "0"
        else:
            spec["left_pad"] = "0"
    elif fmt == "b":
        spec["data_enc"] = "b"
    else:
        spec["data_enc"] = "ascii"
    return spec


def build_spec():
    spec = {
        "h": {"data_enc": "b", "len_enc": "ascii", "len_type": 0, "max_len": 11, "desc": "TPDU+header"},
        "t": {"data_enc": "b", "len_enc": "ascii", "len_type": 0, "max_len": 2, "desc": "MTI"},
        "p": {"data_enc": "b", "len_enc": "ascii", "len_type": 0, "max_len": 8, "desc": "Bitmap"},
    }
    for n, (fmt, kind, length, align) in FIELDS.items():
        spec[str(n)] = _field_spec(fmt, kind, length, align)
    return spec


SPEC = build_spec()


def random_value(rng, n):
    """A random valid value for field n in the vectors' convention (hex for b)."""
    fmt, kind, length, _ = FIELDS[n]
    size = length if kind == "fixed" else rng.randint(1, length)
    if fmt == "n":
        return "".join(rng.choice("0123456789") for _ in range(size))
    if fmt == "z":
        s = [rng.choice("0123456789") for _ in range(size)]
        if size > 2:
            s[rng.randrange(1, size)] = "D"
        return "".join(s)
    if fmt == "b":
        return bytes(rng.randrange(256) for _ in range(size)).hex().upper()
    return "".join(chr(rng.randint(0x20, 0x7E)) for _ in range(size))
