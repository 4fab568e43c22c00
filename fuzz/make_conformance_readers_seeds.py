#!/usr/bin/env python3
"""Writes corpus/fuzz/conformance_readers/*: segment images laid out as docs/shm.md
describes them (ssvm header §2, fifo-segment header §3.1, message queue §4.1), prefixed by the two
mq offsets the target probes. Run from the repository root: python3 fuzz/make_conformance_readers_seeds.py
"""
import os
import struct

OUT = "corpus/fuzz/conformance_readers"


def image(fsh_base=0x200, q_len=16, ring_lens=(16, 8), queued=2, evt_type=28, corrupt=None):
    mq_rel = 128 + 192  # start_byte_index with one slice
    mq = bytearray()
    mq += struct.pack("<I", 2) + b"\0" * 4  # n_rings, pad
    queue = bytearray(112)
    struct.pack_into("<IIIII", queue, 88, 0, queued, queued, q_len, 8)  # head tail cursize maxsize elsize
    mq += queue
    handles = bytearray(q_len * 8)
    for k in range(queued):
        struct.pack_into("<II", handles, k * 8, 1, k)  # ring 1 (control events), element k
    mq += handles
    for i, (n, el) in enumerate(zip(ring_lens, (18, 256))):
        hdr = struct.pack("<IIIII", queued if i == 1 else 0, n, 0, queued if i == 1 else 0, el)
        data = bytearray(n * el)
        if i == 1:
            for k in range(min(queued, n)):
                e = k * el
                data[e] = evt_type  # APP_ADD_SEGMENT
                struct.pack_into("<I", data, e + 14, 1 << 20)
                name = b"seg-1-0-%d" % (k + 1)
                data[e + 18 : e + 18 + len(name)] = name
                struct.pack_into("<Q", data, e + 146, (1 << 32) | (k + 1))
        mq += hdr + data
    size = fsh_base + mq_rel + len(mq)
    img = bytearray(size)
    struct.pack_into("<QQII", img, 24, 0, size, 100, 200)  # ssvm_va, ssvm_size, pids
    struct.pack_into("<Q", img, 56, fsh_base)  # opaque[0]
    struct.pack_into("<II", img, 112, 1, 1)  # ready, type MEMFD
    f = fsh_base
    struct.pack_into("<QII", img, f, 0, 0, mq_rel)  # cached, active fifos, reserved
    struct.pack_into("<IBBB", img, f + 16, 24, 1, 50, 1)  # max_log2, n_slices, pct, n_mqs
    struct.pack_into("<QQQ", img, f + 64, mq_rel + len(mq), size - fsh_base, mq_rel)
    img[f + mq_rel : f + mq_rel + len(mq)] = mq
    if corrupt:
        corrupt(img, f + mq_rel)
    return struct.pack("<QQ", mq_rel, mq_rel + 8) + bytes(img)


def put32(off_rel, value):
    def c(img, mq):
        struct.pack_into("<I", img, mq + off_rel, value)
    return c


seeds = {
    "app-mq-head.bin": image(),
    "app-mq-seed-evt.bin": image(evt_type=26),
    "empty-queue.bin": image(queued=0),
    "cursize-over-maxsize.bin": image(corrupt=put32(8 + 96, 0xFFFF)),
    "head-past-maxsize.bin": image(corrupt=put32(8 + 88, 17)),
    "elsize-zero-huge-maxsize.bin": image(corrupt=lambda img, mq: (
        struct.pack_into("<I", img, mq + 8 + 100, 0xFFFFFFFF),
        struct.pack_into("<I", img, mq + 8 + 104, 0))),
    "ring-nitems-huge.bin": image(corrupt=put32(8 + 112 + 16 * 8 + 4, 0x7FFFFFFF)),
    "n-rings-17.bin": image(corrupt=put32(0, 17)),
    "bad-elt-index.bin": image(corrupt=put32(8 + 112 + 4, 999)),
    "opaque0-zero.bin": struct.pack("<QQ", 0, 0) + bytes(4096),
    "short-file.bin": struct.pack("<QQ", 0, 0) + bytes(60),
}

os.makedirs(OUT, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(OUT, name), "wb") as fh:
        fh.write(data)
print(f"wrote {len(seeds)} seeds to {OUT}")
