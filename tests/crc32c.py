#!/usr/bin/env python3
"""Small image surgery for tests/errors.sh (no dependencies beyond python3).

    crc32c.py selftest                   check the CRC-32C implementation
    crc32c.py sum FILE [START END]       print the CRC-32C of bytes START..END-1
    crc32c.py get FILE OFFSET SIZE       print the little-endian integer there
    crc32c.py set FILE OFFSET SIZE VALUE write a little-endian integer there
    crc32c.py fixhdr FILE                recompute the file header CRC
    crc32c.py checkhdr FILE              exit 0 if the stored header CRC matches
    crc32c.py flip FILE OFFSET BIT       flip one bit in place

The file header of a cryo image (src/image/format.h) is 64 bytes; its
CRC-32C over bytes 0..59 is stored, little-endian, at offset 60.
"""
import struct
import sys

HDR_CRC_OFFSET = 60
POLY = 0x82F63B78  # CRC-32C (Castagnoli), reflected

_TABLE = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ POLY if _c & 1 else _c >> 1
    _TABLE.append(_c)


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc = _TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


FMT = {1: "<B", 2: "<H", 4: "<I", 8: "<Q"}


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 64
    cmd, args = argv[1], argv[2:]
    if cmd == "selftest":
        ok = crc32c(b"123456789") == 0xE3069283
        print("ok" if ok else "crc32c selftest FAILED")
        return 0 if ok else 1
    if cmd == "sum":
        with open(args[0], "rb") as f:
            data = f.read()
        start = int(args[1], 0) if len(args) > 1 else 0
        end = int(args[2], 0) if len(args) > 2 else len(data)
        print("%08x" % crc32c(data[start:end]))
        return 0
    if cmd == "get":
        off, size = int(args[1], 0), int(args[2], 0)
        with open(args[0], "rb") as f:
            f.seek(off)
            print(struct.unpack(FMT[size], f.read(size))[0])
        return 0
    if cmd == "set":
        off, size, value = int(args[1], 0), int(args[2], 0), int(args[3], 0)
        with open(args[0], "r+b") as f:
            f.seek(off)
            f.write(struct.pack(FMT[size], value))
        return 0
    if cmd in ("fixhdr", "checkhdr"):
        with open(args[0], "r+b") as f:
            head = f.read(HDR_CRC_OFFSET + 4)
            if len(head) < HDR_CRC_OFFSET + 4:
                print("file shorter than a header", file=sys.stderr)
                return 1
            crc = crc32c(head[:HDR_CRC_OFFSET])
            if cmd == "checkhdr":
                stored = struct.unpack("<I", head[HDR_CRC_OFFSET:])[0]
                if stored != crc:
                    print("header CRC stored %08x, computed %08x" % (stored, crc))
                    return 1
                return 0
            f.seek(HDR_CRC_OFFSET)
            f.write(struct.pack("<I", crc))
        return 0
    if cmd == "flip":
        off, bit = int(args[1], 0), int(args[2], 0)
        with open(args[0], "r+b") as f:
            f.seek(off)
            b = f.read(1)
            if len(b) != 1:
                print("offset %d beyond the end" % off, file=sys.stderr)
                return 1
            f.seek(off)
            f.write(bytes([b[0] ^ (1 << bit)]))
        return 0
    print(__doc__, file=sys.stderr)
    return 64


if __name__ == "__main__":
    sys.exit(main(sys.argv))
