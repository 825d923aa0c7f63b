#!/usr/bin/env python3
# Seed inputs for fuzz_loader: small valid kernels of each kind the loader
# takes (a PVH ELF, a 64-bit ELF without the note, bzImages of boot
# protocol 2.06, 2.10 and 2.15, relocatable or not), behind the target's
# 5-byte header (flags, initrd length / 64, command-line length).
# With a real guest kernel (make guest), also its headers: the vmlinux's
# program headers and notes with each PT_LOAD cut to one page, and the
# bzImage's setup code and header with a few pages of kernel.
# usage: test/fuzz/mkseeds_loader.py DIR [VMLINUX BZIMAGE]
import os
import struct
import sys

MIB = 1 << 20
PT_LOAD, PT_NOTE = 1, 4
XEN_ELFNOTE_PHYS32_ENTRY = 18


def hdr(flags, initrd_units, cmdline_len):
    return struct.pack("<BHH", flags, initrd_units, cmdline_len)


def note(name, ntype, desc):
    n = name.encode() + b"\0"
    pad = lambda b: b + b"\0" * (-len(b) % 4)
    return struct.pack("<III", len(n), len(desc), ntype) + pad(n) + pad(desc)


def elf(pvh, entry_width=8, segs=((0x1000000, 0x2000, 0x3000), (0x1400000, 0x800, 0x800))):
    """An x86_64 ET_EXEC: PT_LOAD (paddr, filesz, memsz) each, a PT_NOTE."""
    nph = len(segs) + (1 if pvh else 0)
    off = 64 + 56 * nph
    off = (off + 0xfff) & ~0xfff
    phdrs, body = b"", b""
    for paddr, filesz, memsz in segs:
        phdrs += struct.pack("<IIQQQQQQ", PT_LOAD, 7, off + len(body), paddr,
                             paddr, filesz, memsz, 0x1000)
        body += bytes((i * 7 + 1) & 0xff for i in range(filesz))
    if pvh:
        entry = segs[0][0] + 0x100
        val = struct.pack("<Q" if entry_width == 8 else "<I", entry)
        notes = note("GNU", 3, b"\x11" * 20) + note("Xen", XEN_ELFNOTE_PHYS32_ENTRY, val)
        phdrs += struct.pack("<IIQQQQQQ", PT_NOTE, 4, off + len(body), 0, 0,
                             len(notes), 0, 4)
        body += notes
    eh = b"\x7fELF" + bytes([2, 1, 1]) + b"\0" * 9
    eh += struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, segs[0][0], 64, 0, 0, 64, 56,
                      nph, 64, 0, 0)
    img = eh + phdrs
    img += b"\0" * (off - len(img))
    return img + body


def bzimage(version=0x20f, relocatable=1, setup_sects=4, ksize=0x3000,
            init_size=8 * MIB, pref=0x1000000, initrd_max=0x7fffffff, cmdline_size=2047):
    setup = bytearray(((setup_sects or 4) + 1) * 512)
    end = {0x206: 0x23c, 0x20a: 0x264}.get(version, 0x26c)
    fields = [
        (0x1f1, "<B", setup_sects), (0x1f4, "<I", ksize // 16),
        (0x1fe, "<H", 0xaa55), (0x200, "<B", 0xeb), (0x201, "<B", end - 0x202),
        (0x202, "<I", 0x53726448), (0x206, "<H", version),
        (0x211, "<B", 1), (0x214, "<I", 0x100000), (0x22c, "<I", initrd_max),
        (0x230, "<I", 0x200000), (0x234, "<B", relocatable),
        (0x236, "<H", 0x7f), (0x238, "<I", cmdline_size),
    ]
    if version >= 0x20a:
        fields += [(0x258, "<Q", pref), (0x260, "<I", init_size)]
    for off, fmt, v in fields:
        struct.pack_into(fmt, setup, off, v)
    return bytes(setup) + bytes((i * 13 + 5) & 0xff for i in range(ksize))


def real_vmlinux(path):
    """The real ELF header, program headers and notes; loads cut short."""
    with open(path, "rb") as f:
        head = f.read(64)
        eh = list(struct.unpack("<16sHHIQQQIHHHHHH", head))
        phoff, phnum = eh[5], eh[10]
        f.seek(phoff)
        phs = [list(struct.unpack("<IIQQQQQQ", f.read(56))) for _ in range(phnum)]
        notes = {}
        for i, ph in enumerate(phs):
            if ph[0] == PT_NOTE:
                f.seek(ph[2])
                notes[i] = f.read(ph[5])
    off = (64 + 56 * phnum + 0xfff) & ~0xfff
    body = b""
    for i, ph in enumerate(phs):
        if ph[0] == PT_LOAD:
            ph[2], ph[5], ph[6] = off + len(body), 0x1000, 0x2000
            body += bytes((j * 7 + 1) & 0xff for j in range(0x1000))
        elif i in notes:
            ph[2] = off + len(body)
            body += notes[i]
    eh[5], eh[6], eh[12], eh[13] = 64, 0, 0, 0
    img = struct.pack("<16sHHIQQQIHHHHHH", *eh)
    img += b"".join(struct.pack("<IIQQQQQQ", *ph) for ph in phs)
    img += b"\0" * (off - len(img))
    return img + body


def real_bzimage(path):
    """The real setup code and header, then 12 KiB of kernel."""
    with open(path, "rb") as f:
        data = f.read(64 * 1024)
    sects = data[0x1f1] or 4
    setup = bytearray(data[:(sects + 1) * 512])
    struct.pack_into("<I", setup, 0x1f4, 0x3000 // 16)
    return bytes(setup) + bytes((i * 13 + 5) & 0xff for i in range(0x3000))


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    seeds = {
        "elf-pvh": hdr(0, 0, 22) + elf(True),
        "elf-pvh-initrd": hdr(2, 160, 40) + elf(True),
        "elf-pvh-4byte-note-high-ram": hdr(3, 16, 0) + elf(True, entry_width=4),
        "elf-linux64": hdr(0, 0, 12) + elf(False),
        "elf-linux64-initrd-17m": hdr(2 | 4, 64, 100) + elf(False, segs=((0x100000, 0x1000, 0x2000),)),
        "bzimage-2.15-initrd": hdr(2, 300, 30) + bzimage(),
        "bzimage-2.15-high-ram": hdr(1 | 12, 8, 2047) + bzimage(),
        "bzimage-2.10-fixed": hdr(2 | 8, 32, 10) + bzimage(version=0x20a, relocatable=0, pref=0x200000),
        "bzimage-2.06": hdr(2, 16, 255) + bzimage(version=0x206, setup_sects=0, cmdline_size=255),
        "bzimage-low-initrd-max": hdr(2, 64, 0) + bzimage(initrd_max=0x37ffffff, init_size=2 * MIB),
    }
    if len(sys.argv) > 3:
        seeds["real-vmlinux-pvh"] = hdr(2, 64, 60) + real_vmlinux(sys.argv[2])
        seeds["real-bzimage"] = hdr(2, 64, 60) + real_bzimage(sys.argv[3])
    for name, data in seeds.items():
        with open(os.path.join(out, "seed-" + name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
