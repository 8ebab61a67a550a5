#!/usr/bin/env python3
"""mkplanseed.py: a seed for the cuda_plan fuzzer from a CUDA executable
built by `morc build --target cuda`: its serialized launch plan (format in
runtime/cuda_plan.h) with the PTX, cubin and tokenizer blobs replaced by a
few bytes, so the seed is small. Run by hand when the plan format changes:

    python3 tests/fuzz/mkplanseed.py EXE OUT
"""
import struct
import sys


def main():
    data = open(sys.argv[1], "rb").read()
    magic, off, ln, _woff = data[-32:-24], *struct.unpack("<QQQ", data[-24:])
    assert magic == b"MORCUDA1", "not a morc CUDA executable"
    p = data[off:off + ln]
    assert p[:8] == b"MORCUPL1"
    pos = 8

    def take(n):
        nonlocal pos
        pos += n
        return p[pos - n:pos]

    def u32():
        return struct.unpack("<I", take(4))[0]

    def i64():
        return struct.unpack("<q", take(8))[0]

    def string():
        take(u32())

    string(), string()  # name, arch
    for _ in range(14):  # vocab .. n_tickets
        i64()
    n = i64()
    take(16 * n)  # constant count slots
    i64(), i64()  # logits_off, depths_off
    for _ in range(i64()):  # weights
        string(), take(4 + 8 + 8)
    for _ in range(i64()):  # KV stores
        string(), take(32)
    for _ in range(i64()):  # kernel names
        string()
    for _ in range(i64()):  # labels
        string()
    take(i64() * (3 * (11 * 4 + 4) + 12))  # steps: 3 launches (11 i32 + max_t), first_param, n_params, label
    take(i64() * 12)  # parameters
    head = p[:pos]
    ptx = b"// ptx\n"
    out = head + struct.pack("<Q", len(ptx)) + ptx + struct.pack("<Q", 0) + struct.pack("<Q", 0)
    open(sys.argv[2], "wb").write(out)


if __name__ == "__main__":
    main()
