#!/usr/bin/env python3
"""Write a small, deliberately broken x86_64 ELF kernel for bad-input tests.

usage: mkelf.py outside|overlap OUT
  outside: one PT_LOAD segment at 1 GiB (past a 64 MiB guest's RAM)
  overlap: two PT_LOAD segments that overlap in guest-physical memory
"""
import struct
import sys

def elf(segments):
    ehsize, phentsize = 64, 56
    phoff = ehsize
    data_off = phoff + phentsize * len(segments)
    payload = b"\xf4" * 0x1000  # hlt
    hdr = struct.pack("<4sBBBBB7xHHIQQQIHHHHHH", b"\x7fELF", 2, 1, 1, 0, 0,
                      2, 62, 1, segments[0][0], phoff, 0, 0, ehsize,
                      phentsize, len(segments), 64, 0, 0)
    phdrs = b""
    for paddr, size in segments:
        phdrs += struct.pack("<IIQQQQQQ", 1, 7, data_off, paddr, paddr,
                             len(payload), size, 0x1000)
    return hdr + phdrs + payload

kind, out = sys.argv[1], sys.argv[2]
if kind == "outside":
    img = elf([(0x40000000, 0x1000)])
elif kind == "overlap":
    img = elf([(0x1000000, 0x200000), (0x1100000, 0x200000)])
else:
    sys.exit("unknown kind " + kind)
open(out, "wb").write(img)
