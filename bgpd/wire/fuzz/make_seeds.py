#!/usr/bin/env python3
"""Writes the fuzz seed corpus (seeds/): hand-made messages mirroring the unit-test vectors,
plus every captured fixture in ../tests/fixtures/*/*.hex. A seed is one context octet (see
fuzz_targets/decode.rs) followed by a stream of messages."""
import glob, os, re

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "seeds")

def msg(t, body):
    return b"\xff" * 16 + (19 + len(body)).to_bytes(2, "big") + bytes([t]) + body

def attr(flags, code, value):
    if len(value) > 255:
        return bytes([flags | 0x10, code]) + len(value).to_bytes(2, "big") + value
    return bytes([flags, code, len(value)]) + value

def update(withdrawn=b"", attrs=b"", nlri=b""):
    return msg(2, len(withdrawn).to_bytes(2, "big") + withdrawn + len(attrs).to_bytes(2, "big") + attrs + nlri)

def cap(code, value):
    return bytes([code, len(value)]) + value

def open_(my_as, hold, rid, caps, one_param=False):
    if one_param:
        params = bytes([2, len(b"".join(caps))]) + b"".join(caps)
    else:
        params = b"".join(bytes([2, len(c)]) + c for c in caps)
    return msg(1, bytes([4]) + my_as.to_bytes(2, "big") + hold.to_bytes(2, "big") + bytes(rid) + bytes([len(params)]) + params)

caps = [
    cap(1, b"\x00\x01\x00\x01"), cap(1, b"\x00\x02\x00\x01"), cap(2, b""), cap(70, b""),
    cap(65, (4200000001).to_bytes(4, "big")), cap(64, b"\x40\x78\x00\x01\x01\x80"),
    cap(69, b"\x00\x01\x01\x03\x00\x02\x01\x01"), cap(6, b""), cap(5, b"\x00\x01\x00\x01\x00\x02"),
    cap(73, b"\x05host1\x00"), cap(128, b""),
]
v4_attrs = (attr(0x40, 1, b"\x00") + attr(0x40, 2, b"\x02\x03" + b"".join(a.to_bytes(4, "big") for a in (65001, 4200000001, 3356)))
            + attr(0x40, 3, bytes([192, 0, 2, 1])) + attr(0x80, 4, b"\x00\x00\x00\x0a") + attr(0x40, 5, b"\x00\x00\x00\x64")
            + attr(0x40, 6, b"") + attr(0xc0, 7, (65001).to_bytes(4, "big") + bytes([1, 1, 1, 1]))
            + attr(0xc0, 8, b"\xfd\xe9\x00\x01\xff\xff\xff\x01") + attr(0x80, 9, bytes([1, 1, 1, 1]))
            + attr(0x80, 10, bytes([2, 2, 2, 2])) + attr(0xc0, 16, b"\x00\x02\xfd\xe9\x00\x00\x00\x01")
            + attr(0xc0, 32, (65001).to_bytes(4, "big") * 3) + attr(0xe0, 99, b"\x01\x02\x03"))
nlri = b"".join(bytes([24, 10, i, j]) for i in range(2) for j in range(20))
v6_nh = bytes.fromhex("20010db8000000000000000000000001") + bytes.fromhex("fe800000000000000000000000000001")
mp_reach = attr(0x80, 14, b"\x00\x02\x01" + bytes([len(v6_nh)]) + v6_nh + b"\x00" + bytes([48]) + bytes.fromhex("20010db80001") + bytes([64]) + bytes.fromhex("20010db800020000"))
mp_unreach = attr(0x80, 15, b"\x00\x02\x01" + bytes([32]) + bytes.fromhex("20010db8"))
as2_attrs = (attr(0x40, 1, b"\x00") + attr(0x40, 2, b"\x02\x02\x5b\xa0\xfd\xe9") + attr(0x40, 3, bytes([192, 0, 2, 1]))
             + attr(0xc0, 17, b"\x02\x02" + (200000).to_bytes(4, "big") + (65001).to_bytes(4, "big")))

seeds = {
    "open_caps": [0, open_(23456, 90, [10, 0, 0, 1], caps)],
    "open_one_param": [0, open_(65001, 90, [10, 0, 0, 1], caps, one_param=True)],
    "update_v4_full": [1, update(b"", v4_attrs, nlri)],
    "update_v4_addpath": [3, update(bytes([0, 0, 0, 1, 24, 10, 9, 9]), v4_attrs, bytes([0, 0, 0, 7, 24, 10, 1, 1]))],
    "update_v6_mp": [1, update(b"", mp_reach + mp_unreach + attr(0x40, 1, b"\x00") + attr(0x40, 2, b""), b"")],
    "update_as2": [0, update(b"", as2_attrs, nlri)],
    "eor_v4": [1, update()],
    "eor_v6": [1, update(b"", attr(0x80, 15, b"\x00\x02\x01"))],
    "keepalive_stream": [0, msg(4, b"") * 3],
    "notification_shutdown": [0, msg(3, b"\x06\x02\x05maint")],
    "route_refresh": [0, msg(5, b"\x00\x01\x01\x01") + msg(5, b"\x00\x02\x02\x01")],
    "malformed_origin": [1, update(b"", attr(0x40, 1, b"\x07") + attr(0x40, 2, b"") + attr(0x40, 3, bytes([192, 0, 2, 1])), nlri)],
    "malformed_overrun": [1, update(b"", attr(0x40, 1, b"\x00") + bytes([0xc0, 8, 40, 0, 0]), nlri)],
    "malformed_dup_mp": [1, update(b"", mp_reach + mp_reach)],
    "extended_message": [9, update(b"", v4_attrs, b"".join(bytes([24, 10, i, j]) for i in range(40) for j in range(200)))],
}
os.makedirs(OUT, exist_ok=True)
for name, (flags, stream) in seeds.items():
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(bytes([flags]) + stream)
# Captured sessions: each message of each fixture, under a four-octet context with and without
# ADD-PATH (the fixtures' README says which sessions use it).
for path in sorted(glob.glob(os.path.join(HERE, "..", "tests", "fixtures", "*", "*.hex"))):
    data = bytes.fromhex(re.sub(r"[^0-9a-fA-F]", "", open(path).read()))
    session = os.path.basename(os.path.dirname(path))
    name = os.path.basename(path)[:-4]
    for flags in (1, 7):
        with open(os.path.join(OUT, f"fixture_{session}_{name}_{flags}"), "wb") as f:
            f.write(bytes([flags]) + data)
