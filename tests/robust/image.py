#!/usr/bin/env python3
"""Parse a cryo image and make corrupted variants of it (tests/robust.sh).

    image.py sections IMG        the section table, from the INDEX
    image.py pids IMG            every PID and TID of the image, one a line
    image.py paths IMG           the paths of its descriptors and cwds
    image.py variants IMG [--seed N] [--max N]
                                 the list of variants (name, class, what)
    image.py write IMG NAME OUT  write variant NAME of IMG to OUT
    image.py set-task IMG OUT FIELD=VALUE...
                                 set fields of every task (uid0..3, gid0..3,
                                 cap_prm...), recompute the CRCs, write OUT

The layout is the one of src/image/format.h and docs/image-format.md:
a 64-byte file header at 0 (padded to 4096), sections with 48-byte headers
(magic, type, length, id, entry_size, entry_count, payload_crc, flags,
reserved, header_crc), the INDEX section last, a 32-byte footer. Entry
sizes are taken from the image itself (section headers), field offsets of
the entry structures from format.h (version 1.0).

Variant classes (what tests/robust/walk.py expects of each):
  flip      one bit flipped, no CRC fixed                  -> 65
  trunc     file cut short                                 -> 65
  struct    a length/count/offset/size/type field of the file header,
            a section header, the INDEX or the footer rewritten, CRCs
            recomputed                                     -> 65
  semantic  a value inside a table (TASK, THREAD, VMA, PAGEMAP, FD...)
            rewritten, payload and header CRCs recomputed: restore must
            refuse it (65); inspect may print it (0)

No dependency beyond python3. Everything is deterministic for a seed.
"""
import random
import struct
import sys

import os

# one CRC-32C for every test tool: tests/crc32c.py
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from crc32c import crc32c  # noqa: E402


PAGE = 4096
FILE_HDR = 64
SEC_HDR = 48
FOOTER = 32
IDX_ENTRY = 32
SECTION_MAGIC = 0x54434553

TYPES = {1: "INDEX", 2: "PAD", 3: "STRINGS", 10: "TASK", 11: "THREAD", 12: "XSTATE",
         13: "SIGINFO", 20: "VMA", 21: "PAGEMAP", 22: "PAGES", 23: "ZPAGES", 30: "FD",
         31: "BLOB"}
T = {v: k for k, v in TYPES.items()}

# section header fields: name -> (offset, size)
SH = {"magic": (0, 4), "type": (4, 4), "length": (8, 8), "id": (16, 8),
      "entry_size": (24, 4), "entry_count": (28, 4), "payload_crc": (32, 4),
      "flags": (36, 4), "reserved": (40, 4), "header_crc": (44, 4)}
# index entry fields
IE = {"type": (0, 4), "entry_count": (4, 4), "id": (8, 8), "offset": (16, 8),
      "length": (24, 8)}
# footer fields
FT = {"magic": (0, 8), "index_offset": (8, 8), "file_size": (16, 8),
      "reserved": (24, 4), "crc": (28, 4)}
# file header fields
FH = {"version_major": (8, 2), "version_minor": (10, 2), "header_size": (12, 4),
      "arch": (16, 4), "page_size": (20, 4), "flags": (24, 8), "crc": (60, 4)}

# entry structures (format.h, version 1.0): field -> (offset, size, signed)
TASK = {"pid": (0, 4, 1), "ppid": (4, 4, 1), "pgid": (8, 4, 1), "sid": (12, 4, 1),
        "nr_threads": (16, 4, 0), "flags": (20, 4, 0), "exe_path": (48, 4, 0),
        "cwd_path": (52, 4, 0), "root_path": (56, 4, 0), "exit_signal": (60, 4, 0),
        "start_code": (104, 8, 0), "end_code": (112, 8, 0), "start_brk": (136, 8, 0),
        "brk": (144, 8, 0), "start_stack": (152, 8, 0), "arg_start": (160, 8, 0),
        "arg_end": (168, 8, 0), "env_start": (176, 8, 0), "env_end": (184, 8, 0),
        "auxv_words": (192, 4, 0), "rlim_cur": (1224, 8, 0), "rlim_max": (1352, 8, 0),
        "ngroups": (1512, 4, 0), "pdeathsig": (2592, 4, 1),
        "uid0": (1480, 4, 0), "uid1": (1484, 4, 0), "uid2": (1488, 4, 0), "uid3": (1492, 4, 0),
        "gid0": (1496, 4, 0), "gid1": (1500, 4, 0), "gid2": (1504, 4, 0), "gid3": (1508, 4, 0),
        "cap_inh": (2540, 8, 0), "cap_prm": (2548, 8, 0), "cap_eff": (2556, 8, 0),
        "cap_bnd": (2564, 8, 0), "cap_amb": (2572, 8, 0), "securebits": (2580, 4, 0),
        "no_new_privs": (2584, 4, 0), "dumpable": (2588, 4, 0)}
THREAD = {"tid": (0, 4, 1), "pid": (4, 4, 1), "cs": (8 + 17 * 8, 8, 0),
          "ss": (8 + 20 * 8, 8, 0), "xstate_offset": (232, 8, 0), "xstate_size": (240, 4, 0),
          "sas_flags": (244, 4, 0), "sas_sp": (248, 8, 0), "sas_size": (256, 8, 0),
          "rseq_ptr": (264, 8, 0), "rseq_len": (272, 4, 0), "rseq_sig": (276, 4, 0)}
SIGINFO = {"tid": (0, 4, 1), "pid": (4, 4, 1), "signo": (8, 4, 1)}
VMA = {"start": (0, 8, 0), "end": (8, 8, 0), "pgoff": (16, 8, 0), "prot": (24, 4, 0),
       "kind": (28, 4, 0), "flags": (32, 4, 0), "name": (40, 4, 0),
       "nr_pages_dumped": (80, 8, 0)}
RUN = {"vaddr": (0, 8, 0), "nr_pages": (8, 8, 0)}
FD = {"pid": (0, 4, 1), "fd": (4, 4, 1), "kind": (8, 4, 0), "flags": (12, 4, 0),
      "path": (24, 4, 0), "dup_of": (28, 4, 1), "blob_id": (48, 8, 0),
      "proc_pid": (88, 4, 1), "proc_target": (92, 4, 0)}
ZPH = {"codec": (0, 4, 0), "raw_len": (4, 4, 0)}

FMT = {1: "B", 2: "H", 4: "I", 8: "Q"}
SFMT = {1: "b", 2: "h", 4: "i", 8: "q"}

USER_SPACE_END = 0x7FFFFFFFF000
M64 = (1 << 64) - 1
M32 = (1 << 32) - 1


def get(buf, off, size, signed=False):
    return struct.unpack_from("<" + (SFMT if signed else FMT)[size], buf, off)[0]


def put(buf, off, size, value):
    struct.pack_into("<" + FMT[size], buf, off, value & ((1 << (8 * size)) - 1))


class ImageError(Exception):
    pass


class Image:
    """The parsed image: self.sections is a list of dicts, in file order,
    each with idx, type, name, id, offset (of the header), payload (offset
    of the payload), length, entry_size, entry_count, from the INDEX and the
    section headers."""

    def __init__(self, data):
        self.data = bytes(data)
        d = self.data
        if len(d) < PAGE + FOOTER or d[:8] != b"CRYOIMG1":
            raise ImageError("not a cryo image")
        self.size = len(d)
        f = self.size - FOOTER
        if d[f:f + 8] != b"CRYOEND1":
            raise ImageError("no footer")
        self.footer = f
        self.index_offset = get(d, f + 8, 8)
        io = self.index_offset
        if get(d, io, 4) != SECTION_MAGIC or get(d, io + 4, 4) != 1:
            raise ImageError("no INDEX at %d" % io)
        self.index_entry_size = get(d, io + 24, 4)
        self.index_count = get(d, io + 28, 4)
        self.index_length = get(d, io + 8, 8)
        self.sections = []
        for i in range(self.index_count):
            e = io + SEC_HDR + i * self.index_entry_size
            off = get(d, e + 16, 8)
            s = {
                "idx": i, "entry": e,
                "type": get(d, e, 4), "entry_count": get(d, e + 4, 4),
                "id": get(d, e + 8, 8), "offset": off, "length": get(d, e + 24, 8),
                "payload": off + SEC_HDR,
                "entry_size": get(d, off + 24, 4),
            }
            s["name"] = TYPES.get(s["type"], "type%d" % s["type"])
            self.sections.append(s)
        self.index = {"idx": self.index_count, "type": 1, "name": "INDEX", "id": 0,
                      "offset": io, "payload": io + SEC_HDR, "length": self.index_length,
                      "entry_size": self.index_entry_size,
                      "entry_count": self.index_count}
        st = self.find("STRINGS")
        self.strings_len = st[0]["length"] if st else 0

    def string(self, off):
        st = self.find("STRINGS")
        if not st or off >= st[0]["length"]:
            return None
        p = st[0]["payload"]
        end = self.data.index(b"\0", p + off)
        return self.data[p + off:end].decode(errors="replace")

    def find(self, name, id_=None):
        return [s for s in self.sections
                if s["name"] == name and (id_ is None or s["id"] == id_)]

    def entries(self, sec, fields):
        """Decoded entries of a table section: list of (offset, dict)."""
        out = []
        es = sec["entry_size"]
        for i in range(sec["entry_count"]):
            off = sec["payload"] + i * es
            ent = {k: get(self.data, off + o, n, bool(sg)) for k, (o, n, sg) in fields.items()
                   if o + n <= es}
            out.append((off, ent))
        return out

    def tasks(self):
        secs = self.find("TASK")
        return self.entries(secs[0], TASK) if secs else []

    def threads(self):
        secs = self.find("THREAD")
        return self.entries(secs[0], THREAD) if secs else []

    def pids(self):
        ids = set()
        for _, t in self.tasks():
            ids.add(t["pid"])
        for _, t in self.threads():
            ids.add(t["tid"])
        return sorted(i for i in ids if i > 0)


# -------------------------------------------------------------- surgery

def fix_section_header(buf, hoff):
    put(buf, hoff + 44, 4, crc32c(bytes(buf[hoff:hoff + 44])))


def fix_payload(buf, sec):
    """Recompute the payload CRC of sec (then its header CRC)."""
    h = sec["offset"]
    length = get(buf, h + 8, 8)
    p = h + SEC_HDR
    put(buf, h + 32, 4, crc32c(bytes(buf[p:p + length])))
    fix_section_header(buf, h)


def fix_index(buf, img):
    fix_payload(buf, img.index)


def fix_footer(buf, img):
    f = img.footer
    put(buf, f + 28, 4, crc32c(bytes(buf[f:f + 28])))


def fix_file_header(buf):
    hs = get(buf, 12, 4)
    if not 8 <= hs <= PAGE:
        hs = FILE_HDR
    put(buf, hs - 4, 4, crc32c(bytes(buf[:hs - 4])))


# -------------------------------------------------------------- variants

class Variant:
    """name: unique, file-name safe; cls: flip|trunc|struct|semantic; what:
    human description; make(bytearray) -> bytearray; accept: extra restore
    exit codes that are right for this variant (besides 65); extra_pids:
    PIDs the variant puts in the image (must stay free too)."""

    def __init__(self, name, cls, what, make, accept=(), extra_pids=()):
        self.name, self.cls, self.what, self.make = name, cls, what, make
        self.accept = tuple(accept)
        self.extra_pids = tuple(extra_pids)


def _flip(off, bit):
    def make(buf):
        buf[off] ^= 1 << bit
        return buf
    return make


def _trunc(n):
    def make(buf):
        del buf[n:]
        return buf
    return make


def _hex(v):
    return "0x%x" % v


def pid_max():
    try:
        with open("/proc/sys/kernel/pid_max") as f:
            return int(f.read())
    except OSError:
        return 4194304


def flip_variants(img, rng, per_payload=3, per_header=2):
    out = []
    size = img.size
    # file header, its zero padding, the footer, the INDEX
    spots = [("file header", o) for o in sorted(rng.sample(range(FILE_HDR), 4))]
    spots += [("header page padding", o) for o in sorted(rng.sample(range(FILE_HDR, PAGE), 2))]
    spots += [("footer", img.footer + o) for o in sorted(rng.sample(range(FOOTER), 3))]
    io = img.index_offset
    spots += [("INDEX header", io + o) for o in sorted(rng.sample(range(SEC_HDR), 3))]
    if img.index_length:
        spots += [("INDEX payload", io + SEC_HDR + o)
                  for o in sorted(set(rng.randrange(img.index_length) for _ in range(3)))]
    for s in img.sections:
        label = "section %d (%s)" % (s["idx"], s["name"])
        for o in sorted(rng.sample(range(SEC_HDR), per_header)):
            spots.append((label + " header", s["offset"] + o))
        n = s["length"]
        if n:
            offs = {0, n - 1}
            while len(offs) < min(n, per_payload):
                offs.add(rng.randrange(n))
            for o in sorted(offs):
                spots.append((label + " payload", s["payload"] + o))
        pad_end = (s["payload"] + n + 7) & ~7
        if pad_end > s["payload"] + n:
            spots.append((label + " rounding", s["payload"] + n))
    for what, off in spots:
        if off >= size:
            continue
        bit = rng.randrange(8)
        out.append(Variant("flip-%d-%d" % (off, bit), "flip",
                           "bit %d flipped at offset %d (%s)" % (bit, off, what),
                           _flip(off, bit)))
    return out


def trunc_variants(img, rng, inside=30):
    cuts = {}
    for n, what in ((0, "empty"), (1, "1 byte"), (FILE_HDR - 1, "inside the file header"),
                    (FILE_HDR, "after the file header"), (PAGE, "after the header page"),
                    (img.index_offset, "at the INDEX"), (img.index_offset + SEC_HDR,
                                                          "after the INDEX header"),
                    (img.footer, "before the footer"), (img.size - 1, "last byte missing")):
        cuts.setdefault(n, what)
    for s in img.sections:
        cuts.setdefault(s["offset"], "at section %d (%s)" % (s["idx"], s["name"]))
        cuts.setdefault(s["payload"], "after the header of section %d (%s)" % (s["idx"],
                                                                               s["name"]))
    pts = set()
    while len(pts) < inside:
        pts.add(rng.randrange(1, img.size))
    for n in pts:
        cuts.setdefault(n, "inside")
    return [Variant("trunc-%d" % n, "trunc", "truncated to %d of %d bytes (%s)" %
                    (n, img.size, what), _trunc(n)) for n, what in sorted(cuts.items())
            if n < img.size]


def _set_fields(changes, fix):
    """changes: list of (offset, size, value); fix: list of callables(buf)."""
    def make(buf):
        for off, size, value in changes:
            put(buf, off, size, value)
        for f in fix:
            f(buf)
        return buf
    return make


HUGE64 = [0, 1, (1 << 40), (1 << 63), M64]
HUGE32 = [0, 1, 0x7FFFFFFF, 0x80000000, M32]


def struct_variants(img, rng, max_sections=None):
    out = []
    size = img.size

    def add(name, what, changes, fix, cls="struct", accept=()):
        out.append(Variant(name, cls, what, _set_fields(changes, fix), accept=accept))

    # file header
    # (a longer header_size, 64 < size <= 4096 and a multiple of 4, is valid:
    # a newer minor's longer header)
    for field, vals in (("header_size", [0, 4, 60, 63, 65, 66, 4097, 4100, 0x80000000, M32]),
                        ("page_size", [0, 1, 2048, 8192, M32]),
                        # bit 0 (pre-copy, 1.1) is defined: an undefined bit must be refused
                        ("flags", [2, 1 << 63, M64]),
                        ("version_major", [0, 2, 0xFFFF]),
                        ("arch", [0, 3, 183, M32])):
        o, n = FH[field]
        for v in vals:
            add("fh-%s-%s" % (field, _hex(v)), "file header %s = %s, CRC fixed" % (field, _hex(v)),
                [(o, n, v)], [fix_file_header])

    # footer
    f = img.footer
    fix_f = [lambda b: fix_footer(b, img)]
    io = img.index_offset
    for v in [0, 8, PAGE - 8, PAGE, io - 8, io + 1, io + 8, f - SEC_HDR, f, size, 1 << 40,
              1 << 63, M64, M64 - 7]:
        if v == io:
            continue
        add("ft-index_offset-%s" % _hex(v), "footer index_offset = %s (was %d), CRC fixed" %
            (_hex(v), io), [(f + 8, 8, v)], fix_f)
    for v in [0, FOOTER, size - 1, size + 1, size + 8, 1 << 40, M64]:
        add("ft-file_size-%s" % _hex(v), "footer file_size = %s (was %d), CRC fixed" %
            (_hex(v), size), [(f + 16, 8, v)], fix_f)

    # INDEX section header
    ih = io
    fix_ih = [lambda b: fix_section_header(b, ih)]
    for field, vals in (("entry_size", [0, 1, 16, 31, 33, 40, 4097, 0x80000000, M32]),
                        ("entry_count", [0, img.index_count - 1, img.index_count + 1,
                                         (1 << 22) + 1, 0x80000000, M32]),
                        ("length", [0, img.index_length - 8, img.index_length + 8,
                                    1 << 40, 1 << 63, M64]),
                        ("type", [0, 2, 99]),
                        ("flags", [1])):
        o, n = SH[field]
        for v in vals:
            add("ih-%s-%s" % (field, _hex(v)), "INDEX header %s = %s, CRC fixed" % (field, _hex(v)),
                [(ih + o, n, v)], fix_ih)
    # INDEX entry_count and length consistent (one entry fewer / one more)
    es = img.index_entry_size
    for d in (-1, 1):
        c = img.index_count + d
        add("ih-count-len%+d" % d, "INDEX entry_count and length %+d entry, CRC fixed" % d,
            [(ih + 28, 4, c), (ih + 8, 8, c * es)], [lambda b: fix_payload(b, img.index)])

    # section headers, and index entries
    secs = list(img.sections)
    if max_sections and len(secs) > max_sections:
        keep = {0, len(secs) - 1}
        for name in set(s["name"] for s in secs):
            keep.add(next(s["idx"] for s in secs if s["name"] == name))
        rest = [s["idx"] for s in secs if s["idx"] not in keep]
        rng.shuffle(rest)
        keep.update(rest[:max(0, max_sections - len(keep))])
        secs = [s for s in secs if s["idx"] in keep]
    fix_idx = lambda b: fix_payload(b, img.index)
    for s in secs:
        h = s["offset"]
        tag = "s%d-%s" % (s["idx"], s["name"])
        fix_h = (lambda hh: [lambda b: fix_section_header(b, hh)])(h)
        L, es_, c = s["length"], s["entry_size"], s["entry_count"]
        fields = [
            ("length", [0, L + 1, L + 8, 1 << 40, 1 << 63, M64] + ([L - 1] if L else [])),
            # (an empty table may have any entry size > 0: skip those)
            ("entry_size", ([0, 1, es_ + 1, 0x80000000, M32] if c else [0]) if es_ else
             [1, PAGE, M32]),
            ("entry_count", [0, c + 1, 0x80000000, M32] + ([c - 1] if c else [])),
            ("type", [0, 1, 99] + ([T["STRINGS"]] if s["name"] != "STRINGS" else [T["PAD"]])),
            ("id", [s["id"] ^ 1, M64]),
            ("magic", [0]),
            ("flags", [1]),
        ]
        for field, vals in fields:
            o, n = SH[field]
            for v in rng.sample(vals, min(len(vals), 3)):
                if v == get(img.data, h + o, n):
                    continue
                add("%s-%s-%s" % (tag, field, _hex(v)),
                    "section %d (%s) header %s = %s, header CRC fixed" % (
                        s["idx"], s["name"], field, _hex(v)), [(h + o, n, v)], fix_h)
        # the same field changed in the header and in the index entry: the
        # tiling and shape checks must catch it, not the comparison
        e = s["entry"]
        for field, vals in (("length", [L + 8, 1 << 40, M64] + ([L - 8] if L >= 8 else [])),
                            ("entry_count", [c + 1, M32] + ([c - 1] if c else [])),
                            ("type", [1, 99]),
                            ("id", [s["id"] + 1])):
            o, n = SH[field]
            io_, ion = IE[field]
            v = rng.choice(vals)
            # a consistent id is a matter of meaning (restore's), not of
            # structure; PAD and STRINGS ids are documented as 0, but no
            # reader needs them: accepting one is only worth a note
            cls, acc = "struct", ()
            if field == "id":
                cls = "semantic"
                acc = (0,) if s["name"] in ("PAD", "STRINGS") else ()
            add("%s-%s-both-%s" % (tag, field, _hex(v)),
                "section %d (%s) %s = %s in header and index entry, CRCs fixed" % (
                    s["idx"], s["name"], field, _hex(v)),
                [(h + o, n, v), (e + io_, ion, v)], fix_h + [fix_idx], cls, acc)
        # the index entry alone
        for field, vals in (("offset", [0, h + 8, h - 8, PAGE, 1 << 40, M64]),
                            ("length", [L + 1, M64]), ("entry_count", [c + 1, M32]),
                            ("type", [1, 99]), ("id", [s["id"] + 7])):
            io_, ion = IE[field]
            for v in rng.sample(vals, min(len(vals), 2)):
                if v == get(img.data, e + io_, ion):
                    continue
                add("%s-ie-%s-%s" % (tag, field, _hex(v)),
                    "index entry of section %d (%s): %s = %s, INDEX CRC fixed" % (
                        s["idx"], s["name"], field, _hex(v)), [(e + io_, ion, v)], [fix_idx])
    return out


def semantic_variants(img, rng, max_per_table=None):
    """Values inside tables, CRCs recomputed."""
    out = []
    pm = pid_max()
    slen = img.strings_len

    def add(name, what, sec, changes, accept=(), extra_pids=(), cls="semantic"):
        out.append(Variant(name, cls, what + ", CRCs fixed",
                           _set_fields(changes, [lambda b, s=sec: fix_payload(b, s)]),
                           accept=accept, extra_pids=extra_pids))

    def fld(table, name):
        o, n, _ = table[name]
        return o, n

    # TASK
    tsec = img.find("TASK")
    tasks = img.tasks()
    if tsec and tasks:
        tsec = tsec[0]
        picks = [0] + ([len(tasks) - 1] if len(tasks) > 1 else [])
        for ti in picks:
            off, t = tasks[ti]
            who = "task %d" % t["pid"]
            tag = "task%d" % t["pid"]

            def tv(field, v, what=None, accept=(), extra=()):
                o, n = fld(TASK, field)
                add("%s-%s-%s" % (tag, field, _hex(v & ((1 << (8 * n)) - 1))),
                    "%s: %s" % (who, what or "%s = %s" % (field, v)), tsec,
                    [(off + o, n, v)], accept, extra)

            tv("pid", 0, "pid 0")
            tv("pid", -1, "pid -1")
            tv("pid", pm, "pid = pid_max (%d)" % pm)
            tv("pid", pm + 1000, "pid > pid_max")
            tv("pid", 0x7FFFFFFF, "pid 2^31-1")
            tv("nr_threads", 0, "thread count 0")
            tv("nr_threads", t["nr_threads"] + 1, "thread count one too many")
            tv("nr_threads", M32, "thread count 2^32-1")
            for sf in ("exe_path", "cwd_path", "root_path"):
                tv(sf, slen, "%s string offset = end of the string table" % sf)
                tv(sf, slen + 100, "%s string offset past the string table" % sf)
                tv(sf, M32, "%s string offset 2^32-1" % sf)
            tv("exe_path", 0, "exe path empty (not absolute)")
            tv("auxv_words", 129, "auxv_words 129 (> 128)")
            tv("auxv_words", 3, "auxv_words odd")
            tv("auxv_words", M32, "auxv_words 2^32-1")
            tv("ngroups", 257, "ngroups 257 (> 256)")
            tv("ngroups", M32, "ngroups 2^32-1")
            tv("pdeathsig", 65, "pdeathsig 65")
            tv("pdeathsig", -1, "pdeathsig -1")
            o, _ = fld(TASK, "rlim_cur")
            add("%s-rlim-cur-gt-max" % tag, "%s: RLIMIT_NOFILE soft limit above hard" % who,
                tsec, [(off + o + 7 * 8, 8, M64), (off + TASK["rlim_max"][0] + 7 * 8, 8, 1024)])
            if ti == 0:
                tv("flags", 2, "the root task marked zombie")
            else:
                # a parent outside the image is what --pgid/--sid images
                # have: the task becomes cryo's child (or is refused, 69)
                tv("ppid", 0, "parent pid 0", accept=(0, 69))
                tv("ppid", t["pid"], "its own parent")
                tv("ppid", tasks[0][1]["pid"] + 77777, "parent not in the image",
                   accept=(0, 69))
            # memory layout fields handed to PR_SET_MM_MAP: kernel-refused
            # values; cryo may only find out in the memory phase (74)
            tv("brk", 0, "brk 0 (below start_brk)", accept=(74,))
            tv("start_code", M64, "start_code 2^64-1", accept=(74,))
            tv("arg_end", 0, "arg_end 0 (below arg_start)", accept=(74,))
            tv("exit_signal", 1000, "exit signal 1000", accept=(74,))

    # THREAD
    thsec = img.find("THREAD")
    threads = img.threads()
    if thsec and threads:
        thsec = thsec[0]
        picks = sorted(set([0, len(threads) - 1, rng.randrange(len(threads))]))
        last = picks[-1]
        for i in picks:
            off, t = threads[i]
            who = "thread %d" % t["tid"]
            tag = "thread%d" % t["tid"]

            def hv(field, v, what, accept=()):
                o, n = fld(THREAD, field)
                add("%s-%s-%s" % (tag, field, _hex(v & ((1 << (8 * n)) - 1))),
                    "%s: %s" % (who, what), thsec, [(off + o, n, v)], accept)

            hv("tid", 0, "tid 0")
            hv("tid", -1, "tid -1")
            hv("tid", pm + 5, "tid > pid_max")
            hv("pid", t["pid"] + 1, "pid of another process")
            hv("xstate_offset", 1 << 40, "XSAVE area offset 2^40")
            hv("xstate_offset", M64, "XSAVE area offset 2^64-1")
            hv("xstate_offset", M64 - 511, "XSAVE area offset near 2^64 (wraps)")
            hv("xstate_size", 0, "XSAVE area size 0")
            hv("xstate_size", M32, "XSAVE area size 2^32-1")
            # refused by the kernel only when the thread is set up (74 is
            # fine); one thread of each kind is enough
            if i in (0, last):
                hv("rseq_len", 1, "rseq length 1", accept=(74,))
            if i == last:
                hv("cs", 0, "cs selector 0", accept=(74,))
        # two threads with the same TID
        if len(threads) > 1:
            o, n = fld(THREAD, "tid")
            add("thread-dup-tid", "threads %d and %d: same TID" % (
                threads[0][1]["tid"], threads[1][1]["tid"]), thsec,
                [(threads[1][0] + o, n, threads[0][1]["tid"])])

    # XSTATE: components this CPU lacks (69 is right), garbage in the header
    xs = img.find("XSTATE")
    if xs and threads:
        xs = xs[0]
        xo = xs["payload"] + threads[0][1]["xstate_offset"]
        add("xstate-xfeatures-all", "XSAVE header of thread %d: xfeatures all ones" %
            threads[0][1]["tid"], xs, [(xo + 512, 8, M64)], accept=(69,))
        add("xstate-xcomp-garbage", "XSAVE header of thread %d: reserved bytes set" %
            threads[0][1]["tid"], xs, [(xo + 512 + 16, 8, M64)], accept=(74,))

    # VMA, PAGEMAP
    vsecs = img.find("VMA")
    for vsec in vsecs[:2]:
        pid = vsec["id"]
        vmas = img.entries(vsec, VMA)
        if not vmas:
            continue
        idxs = list(range(len(vmas)))
        sel = sorted(set([0, len(vmas) - 1] + rng.sample(idxs, min(3, len(idxs)))))
        # an area with pages, and a heap or stack if any
        for i, (_, v) in enumerate(vmas):
            if v["nr_pages_dumped"] and i not in sel:
                sel.append(i)
                break
        for i in sel:
            off, v = vmas[i]
            who = "task %d area %d (%x-%x)" % (pid, i, v["start"], v["end"])
            tag = "vma%d-%d" % (pid, i)

            def vv(name, what, changes, accept=()):
                add("%s-%s" % (tag, name), "%s: %s" % (who, what), vsec,
                    [(off + VMA[f][0], VMA[f][1], val) for f, val in changes], accept)

            vv("end-lt-start", "end < start", [("start", v["end"]), ("end", v["start"])])
            vv("empty", "end == start", [("end", v["start"])])
            vv("unaligned", "start not page aligned", [("start", v["start"] + 1)])
            if v["kind"] != 8:	# [vsyscall] is above user space and never mapped
                vv("kernel", "in kernel space (0xffff800000000000)",
                   [("start", 0xFFFF800000000000), ("end", 0xFFFF800000001000)])
                vv("past-user", "end past user space (0x800000000000)",
                   [("end", 0x800000000000)])
                vv("huge", "0-2^64-4096", [("start", 0), ("end", M64 - 4095)])
            vv("kind0", "kind 0", [("kind", 0)])
            vv("kind99", "kind 99", [("kind", 99)])
            vv("prot", "prot 0xffffffff", [("prot", M32)])
            vv("name-past", "name string offset past the table", [("name", slen + 7)])
            vv("name-max", "name string offset 2^32-1", [("name", M32)])
            # nr_pages_dumped is an upper bound (all-zero pages are not stored):
            # one more is harmless, more than the area holds is corrupt
            vv("pages-over", "nr_pages_dumped more than the area holds",
               [("nr_pages_dumped", (v["end"] - v["start"]) // 4096 + 1)])
            vv("pages-huge", "nr_pages_dumped 2^63", [("nr_pages_dumped", 1 << 63)])
            if i > 0:
                vv("overlap", "overlaps the previous area",
                   [("start", vmas[i - 1][1]["start"])])
        # areas out of order
        if len(vmas) > 2:
            a, b = vmas[0], vmas[1]
            add("vma%d-swapped" % pid, "task %d: areas 0 and 1 swapped" % pid, vsec,
                [(a[0] + VMA["start"][0], 8, b[1]["start"]), (a[0] + VMA["end"][0], 8, b[1]["end"]),
                 (b[0] + VMA["start"][0], 8, a[1]["start"]), (b[0] + VMA["end"][0], 8, a[1]["end"])])
        # page runs
        pms = [s for s in img.find("PAGEMAP") if s["id"] >> 32 == pid and s["entry_count"]]
        for pmsec in rng.sample(pms, min(3, len(pms))):
            vi = pmsec["id"] & M32
            if vi >= len(vmas):
                continue
            v = vmas[vi][1]
            runs = img.entries(pmsec, RUN)
            roff, r = runs[-1]
            who = "task %d area %d page run %d" % (pid, vi, len(runs) - 1)
            tag = "run%d-%d" % (pid, vi)
            rv = lambda name, what, changes, accept=(): add(
                "%s-%s" % (tag, name), "%s: %s" % (who, what), pmsec,
                [(roff + RUN[f][0], 8, val) for f, val in changes], accept)
            rv("at-end", "starts at the end of its area", [("vaddr", v["end"])])
            rv("before", "starts below its area", [("vaddr", v["start"] - PAGE)])
            rv("unaligned", "vaddr not page aligned", [("vaddr", r["vaddr"] + 8)])
            rv("zero", "0 pages", [("nr_pages", 0)])
            rv("past-end", "runs past the end of its area",
               [("nr_pages", r["nr_pages"] + (v["end"] - r["vaddr"]) // PAGE)])
            rv("huge", "2^63 pages", [("nr_pages", 1 << 63)])
            rv("wrap", "vaddr 2^64-4096, 2 pages", [("vaddr", M64 - 4095), ("nr_pages", 2)])
            rv("after-end", "starts a page after the end of its area",
               [("vaddr", v["end"] + PAGE)])
            later = [x for _, x in vmas[vi + 1:] if x["start"] > v["end"] and x["kind"] < 5]
            if later:
                nv = later[0]
                rv("later-area", "starts inside a later area (%x-%x)" % (nv["start"], nv["end"]),
                   [("vaddr", nv["start"])])
            rv("far", "at 0x10000 (below every area)", [("vaddr", 0x10000)])
        if len(out) and max_per_table:
            pass

    # FD
    fsec = img.find("FD")
    if fsec:
        fsec = fsec[0]
        fds = img.entries(fsec, FD)
        if fds:
            picks = sorted(set([0, len(fds) - 1, rng.randrange(len(fds))]))
            for i in picks:
                off, f = fds[i]
                who = "task %d fd %d" % (f["pid"], f["fd"])
                tag = "fd%d-%d" % (f["pid"], f["fd"])

                def fv(field, v, what, accept=()):
                    o, n = fld(FD, field)
                    add("%s-%s-%s" % (tag, field, _hex(v & ((1 << (8 * n)) - 1))),
                        "%s: %s" % (who, what), fsec, [(off + o, n, v)], accept)

                fv("fd", 1 << 31, "fd number 2^31")
                fv("fd", 0x7FFFFFFF, "fd number 2^31-1")
                fv("fd", 1 << 20, "fd number 2^20")
                fv("fd", -1, "fd number -1")
                fv("kind", 0, "kind 0")
                fv("kind", 99, "kind 99")
                fv("path", slen + 3, "path string offset past the table")
                fv("path", M32, "path string offset 2^32-1")
                fv("blob_id", 0xDEADBEEF, "content blob that does not exist")
                fv("pid", f["pid"] + 1, "belongs to another pid")
            # a duplicate of a non-existent fd, and two fds with the same number
            off, f = fds[-1]
            add("fd-dup-unknown", "task %d fd %d: DUP of fd 12345" % (f["pid"], f["fd"]), fsec,
                [(off + FD["kind"][0], 4, 6), (off + FD["dup_of"][0], 4, 12345)])
            if len(fds) > 1:
                add("fd-same-number", "two fds with number %d" % fds[0][1]["fd"], fsec,
                    [(fds[1][0] + FD["fd"][0], 4, fds[0][1]["fd"])])

    # SIGINFO
    ssec = img.find("SIGINFO")
    if ssec and ssec[0]["entry_count"]:
        ssec = ssec[0]
        off, si = img.entries(ssec, SIGINFO)[0]
        for v, what in ((0, "signal 0"), (65, "signal 65"), (-1, "signal -1")):
            add("siginfo-signo-%d" % v, "pending signal: %s" % what, ssec,
                [(off + SIGINFO["signo"][0], 4, v)])
        add("siginfo-tid", "pending signal for unknown thread", ssec,
            [(off + SIGINFO["tid"][0], 4, pm - 1)])

    # STRINGS: NUL at both ends (the reader checks that)
    st = img.find("STRINGS")
    if st and st[0]["length"]:
        st = st[0]
        add("strings-last-not-nul", "string table: last byte not NUL", st,
            [(st["payload"] + st["length"] - 1, 1, 0x41)], cls="struct")
        add("strings-first-not-nul", "string table: first byte not NUL", st,
            [(st["payload"], 1, 0x41)], cls="struct")

    # ZPAGES: header fields and the compressed stream
    zs = img.find("ZPAGES")
    for z in rng.sample(zs, min(3, len(zs))):
        p = z["payload"]
        raw = get(img.data, p + 4, 4)
        who = "compressed pages section %d" % z["idx"]
        tag = "zp%d" % z["idx"]
        for f, v, what in (("codec", 0, "codec 0"), ("codec", 99, "codec 99"),
                           ("raw_len", 0, "raw_len 0"), ("raw_len", raw + 1, "raw_len not whole pages"),
                           ("raw_len", raw + PAGE, "raw_len one page more than the data"),
                           ("raw_len", M32, "raw_len 2^32-1"),
                           ("raw_len", (16 << 20) + PAGE, "raw_len above 16 MiB")):
            add("%s-%s-%s" % (tag, f, _hex(v)), "%s: %s" % (who, what), z,
                [(p + ZPH[f][0], 4, v)])
        if z["length"] > 16:
            add("%s-stream-magic" % tag, "%s: compressed stream starts with garbage" % who, z,
                [(p + 8, 4, 0x12345678)])
        if raw > PAGE:
            add("%s-raw-minus" % tag, "%s: raw_len one page less than the data" % who, z,
                [(p + 4, 4, raw - PAGE)])
    return out


def all_variants(img, seed=1, max_count=None):
    rng = random.Random(seed)
    vs = (flip_variants(img, rng) + trunc_variants(img, rng) + struct_variants(img, rng, 40) +
          semantic_variants(img, rng))
    seen = set()
    uniq = []
    for v in vs:
        if v.name in seen:
            continue
        seen.add(v.name)
        uniq.append(v)
    if max_count and len(uniq) > max_count:
        # a quota per class (semantic variants first: each one is a
        # different check), the rest sampled evenly with a fixed seed
        weights = {"semantic": 0.35, "struct": 0.3, "flip": 0.2, "trunc": 0.15}
        by = {c: [v for v in uniq if v.cls == c] for c in weights}
        quota = {c: min(len(by[c]), int(max_count * w)) for c, w in weights.items()}
        spare = max_count - sum(quota.values())
        for c in weights:
            extra = min(spare, len(by[c]) - quota[c])
            quota[c] += extra
            spare -= extra
        rng2 = random.Random(seed + 1)
        keep = set()
        for c, vs_ in by.items():
            if quota[c] >= len(vs_):
                keep.update(id(v) for v in vs_)
            else:
                keep.update(id(v) for v in rng2.sample(vs_, quota[c]))
        uniq = [v for v in uniq if id(v) in keep]
    return uniq


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 64
    cmd, path = argv[1], argv[2]
    with open(path, "rb") as f:
        data = f.read()
    try:
        img = Image(data)
    except ImageError as e:
        print("image.py: %s: %s" % (path, e), file=sys.stderr)
        return 65
    seed, mx = 1, None
    args = argv[3:]
    while args and args[0].startswith("--"):
        if args[0] == "--seed":
            seed = int(args[1])
        elif args[0] == "--max":
            mx = int(args[1])
        args = args[2:]
    if cmd == "sections":
        print("%4s %-8s %18s %10s %10s %6s %6s" % ("idx", "type", "id", "offset", "length",
                                                  "esize", "count"))
        for s in img.sections + [img.index]:
            print("%4d %-8s %18x %10d %10d %6d %6d" % (s["idx"], s["name"], s["id"], s["offset"],
                                                      s["length"], s["entry_size"],
                                                      s["entry_count"]))
        return 0
    if cmd == "pids":
        for p in img.pids():
            print(p)
        return 0
    if cmd == "paths":
        # the files the image names: descriptors' paths and the tasks' cwd
        # ("KIND PATH" lines; KIND fd-N (enum cryo_fd_kind) or cwd)
        for _, t in img.tasks():
            c = img.string(t["cwd_path"])
            if c:
                print("cwd %s" % c)
        fs = img.find("FD")
        for _, f in (img.entries(fs[0], FD) if fs else []):
            p = img.string(f["path"])
            if p and p.startswith("/"):
                print("fd-%d %s" % (f["kind"], p))
        return 0
    if cmd == "variants":
        for v in all_variants(img, seed, mx):
            print("%s\t%s\t%s" % (v.name, v.cls, v.what))
        return 0
    if cmd == "write":
        name, out = args[0], args[1]
        for v in all_variants(img, seed, None):
            if v.name == name:
                with open(out, "wb") as f:
                    f.write(v.make(bytearray(data)))
                return 0
        print("image.py: no variant %s" % name, file=sys.stderr)
        return 1
    if cmd == "set-task":
        # a forged image: as a malicious writer would, with valid CRCs
        buf = bytearray(data)
        sec = img.find("TASK")[0]
        for off, _ in img.tasks():
            for a in args[1:]:
                k, v = a.split("=", 1)
                o, n, _ = TASK[k]
                put(buf, off + o, n, int(v, 0))
        fix_payload(buf, sec)
        with open(args[0], "wb") as f:
            f.write(buf)
        return 0
    print(__doc__, file=sys.stderr)
    return 64


if __name__ == "__main__":
    sys.exit(main(sys.argv))
