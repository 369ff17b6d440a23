#!/usr/bin/env python3
"""The seal of an sdlstm checkpoint (format 2): its first 512 bytes, an HDF5 user block that h5py and
h5dump skip. docs/CHECKPOINT.md describes it; sdlstm_load checks it before HDF5 parses the file.

  sdlstm_checkpoint.py verify CKPT...   checks each file's seal (exit status 1 if one fails)
  sdlstm_checkpoint.py seal CKPT...     recomputes it, after the file was edited with h5py or another
                                        HDF5 writer (open it with h5py.File(path, "r+"): that keeps the
                                        user block). sdlstm_load refuses an edited file until then.

Needs only the standard library (the CRC is zlib.crc32). Other tools import verify() and seal().
"""

import os
import struct
import sys
import zlib

FORMAT_VERSION = 2
HEADER_SIZE = 512
MAGIC = b"\x89sdlstm-ckpt\r\n\x1a\n"
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
NOTE = b"sdlstm checkpoint; an HDF5 file follows at byte 512 (docs/CHECKPOINT.md)\n"


class SealError(Exception):
    pass


def header(length, crc, version=FORMAT_VERSION):
    """The 512-byte header of a file of `length` bytes whose bytes from 512 on have CRC-32 `crc`."""
    head = MAGIC + struct.pack("<IIQI", version, HEADER_SIZE, length, crc)
    head += struct.pack("<I", zlib.crc32(head))
    return (head + NOTE).ljust(HEADER_SIZE, b"\0")


def body_crc(f, length):
    f.seek(HEADER_SIZE)
    crc = 0
    while True:
        block = f.read(1 << 20)
        if not block:
            break
        crc = zlib.crc32(block, crc)
    return crc


def verify(path):
    """Raises SealError saying what is wrong unless the file's seal matches its bytes."""
    length = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(HEADER_SIZE)
        if head[:8] == HDF5_SIGNATURE:
            raise SealError(f"{path}: an HDF5 file without the sdlstm header (format 1, or not a checkpoint)")
        if head[:16] != MAGIC:
            raise SealError(f"{path}: not an sdlstm checkpoint")
        if len(head) < HEADER_SIZE:
            raise SealError(f"{path}: truncated header")
        version, _, declared, crc = struct.unpack("<IIQI", head[16:36])
        if version != FORMAT_VERSION:
            raise SealError(f"{path}: format {version}, this tool reads {FORMAT_VERSION}")
        if declared != length:
            raise SealError(f"{path}: the header says {declared} bytes, the file has {length}")
        actual = body_crc(f, length)
        if head != header(length, actual, version):
            raise SealError(f"{path}: checksum mismatch, the file is damaged (or was edited: reseal it)")


def seal(path):
    """Rewrites the header of a checkpoint (which already has the 512-byte user block) from its bytes."""
    length = os.path.getsize(path)
    with open(path, "r+b") as f:
        if length <= HEADER_SIZE:
            raise SealError(f"{path}: too short to be a checkpoint")
        f.seek(HEADER_SIZE)
        if f.read(8) != HDF5_SIGNATURE:
            raise SealError(f"{path}: no HDF5 superblock at byte {HEADER_SIZE}")
        crc = body_crc(f, length)
        f.seek(0)
        f.write(header(length, crc))


def main():
    if len(sys.argv) < 3 or sys.argv[1] not in ("verify", "seal"):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    action = verify if sys.argv[1] == "verify" else seal
    failed = False
    for path in sys.argv[2:]:
        try:
            action(path)
        except (SealError, OSError) as e:
            print(f"sdlstm_checkpoint: {e}", file=sys.stderr)
            failed = True
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
