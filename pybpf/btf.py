"""The kernel's types from BTF, read lazily in pure Python.

    btf = vmlinux()                                   # /sys/kernel/btf/vmlinux, memoized
    task = btf.find("task_struct", "struct")          # Struct(id=..., name='task_struct', size=...)
    pid = btf.member(task, "pid")                     # Member(name='pid', type_id=..., bit_offset=...)
    btf.c_name(pid.type_id)                           # 'pid_t'
    btf.tracepoint_args("sched_switch")               # [Param('preempt', ...), Param('prev', ...), ...]
    btf.func_args("vfs_read")                         # [Param('file', ...), Param('buf', ...), ...]

Loading never decodes the type section. The file is mapped (read where it cannot be) and walked once
over the fixed-size type headers: each type's word offset and name offset, and which types are enums.
A record's length depends on its kind and vlen, so the walk visits all 125,827 of vmlinux's: ~55 ms
in Python, ~6 ms when the compile driver lets the kernel make it (kernel_walk, a BPF program:
pybpf.runtime.btf_walk). The Python walk is cached in the trusted cache folder's btf/ (pybpf.diskcache:
checked owner and mode, a SHA-256 of the content, atomic writes) as raw u32 arrays, keyed by the BTF's
identity, so a rewritten entry cannot change the layouts the compiler sees; the kernel's is not, as
it is made about as fast as the entry is read.

`find` needs no index sorted by name. The kernel's walk also hashes every name (its first 16 bytes)
into a table, so a name is found in microseconds; after the Python walk the name is searched in the
string section (~0.8 ms for vmlinux's 2.3 MB), then its offset among the types' name offsets. What
the lookups found is kept for the next run (a cache entry beside the walk's, written by
save_lookups after a compile): a warm compile searches nothing, and its kernel walk skips the
hashing. Only prefix listing (`names`, `list_names`: wildcards, -l) sorts the names, once (~50 ms
for vmlinux), and caches that. A type is decoded into a frozen record when asked for, and memoized.

Identity: size, mtime and inode of the file plus a SHA-1 of its header and first and last 64 KiB.
Hashing the whole 5.5 MB vmlinux costs 2.4 ms (CRC-32) to 3.4 ms (SHA-1) on top of a ~1 ms cached load;
the sample costs ~0.05 ms. sysfs gives /sys/kernel/btf/* a fresh mtime at each boot (vmlinux) and module
load (modules), and a rebuilt kernel needs a boot, so the sample only guards against ordinary files.

Split BTF (modules): type ids continue after the base's last id, string offsets past the base's string
section refer to the module's own, as in the kernel. The format is Documentation/bpf/btf.rst.
"""

from __future__ import annotations

import array
import bisect
import fnmatch
import functools
import itertools
import mmap
import operator
import os
import re
import struct
import sys
from collections.abc import Callable, Iterator

from pybpf import diskcache, trust
# The type kinds are part of this module's API (btf.Int, btf.Ptr, ...).
from pybpf.btf_types import (INT_BOOL, INT_CHAR, INT_SIGNED, AnyType, Array,  # noqa: F401
                             BtfType, Const, Datasec, DeclTag, Enum, Enum64, EnumValue, FieldPath,
                             Float, Func, FuncProto, Fwd, Int, Member, Param, Ptr, Restrict, Struct,
                             Typedef, TypeTag, Union, Var, VarSecInfo, Void, Volatile)
from pybpf.errors import PybpfError
from pybpf.records import NamedTuple
from pybpf.uapi.btf import BTF_KIND_FIXED_WORDS, BTF_KIND_VLEN_WORDS, BTF_MAGIC

VMLINUX = "/sys/kernel/btf/vmlinux"
POINTER_SIZE = 8

# Kind numbers (include/uapi/linux/btf.h).
KIND_NAMES = ("unknown", "int", "ptr", "array", "struct", "union", "enum", "fwd", "typedef", "volatile",
              "const", "restrict", "func", "func_proto", "var", "datasec", "float", "decl_tag",
              "type_tag", "enum64")
KINDS = {name: n for n, name in enumerate(KIND_NAMES) if n}

LINKAGE_NAMES = ("static", "global", "extern")
_MODIFIERS = frozenset(("typedef", "volatile", "const", "restrict", "type_tag"))
_INDEX_MAGIC = b"PYBTFIX4"
_IDENTITY_SIZE = 40         # hex digits of the SHA-256 that name a BTF file and its index
_WALK_HEADER = f"<8sIII{_IDENTITY_SIZE}s"
_NAMES_MAGIC = b"PYBTFNM1"
_KERNEL_WALK_MIN = 256 << 10    # smaller type sections are walked faster in Python than by the kernel
_MAX_SAVED_LOOKUPS = 4096       # names whose lookups a file's cache entry keeps
CACHE_FOLDER = "btf"
# GCC names integer types its own way in BTF; c_name prints, and find also accepts, the usual spelling.
_GCC_INT_NAMES = {"long unsigned int": "unsigned long", "long int": "long", "short unsigned int": "unsigned short",
                  "short int": "short", "long long unsigned int": "unsigned long long",
                  "long long int": "long long"}
_INT_ALIASES = {**_GCC_INT_NAMES, **{v: k for k, v in _GCC_INT_NAMES.items()}}
_SAMPLE = 64 * 1024


# The walk over a type section made by the kernel, when the compile driver provides it (the front
# end does not reach into the runtime; pybpf.compiler sets it): (type section, string section,
# whether to hash the names) -> the fields of a _Walk, or None.
kernel_walk: Callable[[memoryview, memoryview, bool], tuple | None] | None = None


class BtfError(PybpfError):
    """BTF is missing, malformed, or does not have what was asked for."""



# ---------------------------------------------------------------------------------------------------
# The index: built in one pass, cached on disk.

class _Header:
    __slots__ = ("little", "hdr_len", "type_off", "type_len", "str_off", "str_len")

    def __init__(self, little: bool, hdr_len: int, type_off: int, type_len: int, str_off: int, str_len: int):
        self.little, self.hdr_len, self.type_off = little, hdr_len, type_off
        self.type_len, self.str_off, self.str_len = type_len, str_off, str_len


def _parse_header(data) -> _Header:
    if len(data) < 24:
        raise BtfError("BTF data is too short for a header")
    magic_le = struct.unpack_from("<H", data, 0)[0]
    if magic_le == BTF_MAGIC:
        fmt = "<"
    elif struct.unpack_from(">H", data, 0)[0] == BTF_MAGIC:
        fmt = ">"
    else:
        raise BtfError(f"not BTF data (magic {magic_le:#06x})")
    _, version, _flags, hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from(fmt + "HBBIIIII",
                                                                                           data, 0)
    if version != 1:
        raise BtfError(f"unsupported BTF version {version}")
    h = _Header(fmt == "<", hdr_len, hdr_len + type_off, type_len, hdr_len + str_off, str_len)
    if h.type_off + type_len > len(data) or h.str_off + str_len > len(data) or type_len % 4 or h.type_off % 4:
        raise BtfError("BTF header describes sections outside the data")
    return h


def _u32s(values=()) -> array.array:
    a = array.array("I", values)
    assert a.itemsize == 4
    return a


def _indexes(table: bytes, value: int) -> list[int]:
    """The indexes at which a table of native u32s holds value, found at C speed."""
    pattern = struct.pack("=I", value)
    out = []
    at = table.find(pattern)
    while at >= 0:
        if at % 4 == 0:
            out.append(at // 4)
            at = table.find(pattern, at + 4)
        else:
            at = table.find(pattern, at + 1)
    return out


class _Walk(NamedTuple):
    """One pass over the type section: each record's u32 word offset and name offset (by index:
    id - start_id), the indexes of the ENUM/ENUM64 records, whether every name offset is where a
    string starts (then a name is searched only there), and, from the kernel's walk, a hash table
    of the names (heads by bucket, a chain by record, each entry 1 + an index and 0 at the end;
    and the function giving a name's bucket), which answers a name without searching."""
    offsets: array.array
    names: array.array
    enum_records: array.array
    names_at_starts: bool
    name_table: tuple[array.array, array.array, Callable[[bytes], int]] | None


# ---------------------------------------------------------------------------------------------------

class Btf:
    """One BTF file (or blob); split BTF when `base` is given. Construct with Btf.load or Btf.from_bytes."""

    def __init__(self, data, *, base: "Btf | None" = None, name: str = "", identity: str | None = None,
                 cache: bool = True):
        self.name = name
        self.base = base
        self._data = data
        h = self._hdr = _parse_header(data)
        self.start_id = base.end_id if base else 1                  # first id of this file's own types
        self._str_base = base._str_end if base else 0               # string offsets below are the base's
        self._str_end = self._str_base + h.str_len
        words = memoryview(data)[h.type_off:h.type_off + h.type_len]
        if h.little == (sys.byteorder == "little"):
            self._w = words.cast("I")
        else:
            self._w = _u32s()
            self._w.frombytes(words)
            self._w.byteswap()
        self._strings: dict[int, str] = {}
        self._types: dict[int, AnyType] = {}
        self.cache_file: str | None = None
        self.cache_hit = False
        self._cache = cache and identity is not None
        walk = self._load_walk(identity, cache)
        self._offsets, self._names, self._enum_records, self._names_at_starts, self._name_table = walk
        self._names_bytes = self._names.tobytes()   # searched for a name offset (bytes.find)
        # Where the names lie: a split file's (a module's, a script's types) may all be its own, and
        # then a name is not searched in the base's strings.
        self._names_within = (min(filter(None, self._names), default=0), max(self._names, default=0)) \
            if base else (0, 1 << 32)
        self._by_name: array.array | None = None    # the sorted index, for prefix listing only
        self._enum_table: tuple[bytes, list[int], tuple[int, int]] | None = None
        self._found_ids: dict[str, list[int]] = {}      # name -> own ids
        self._found_enums: dict[str, int] = {}          # enumerator name -> own enum id, 0: none
        self._lookups_read = False
        self._string_hits: dict[tuple[bytes, bool, tuple[int, int]], list[int]] = {}
        self.end_id = self.start_id + len(self._offsets)              # one past the last id

    # -- loading -------------------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str = VMLINUX, base: "Btf | None" = None, *, cache: bool = True) -> "Btf":
        """Map (or read) a BTF file; `cache` False neither reads nor writes the index cache."""
        data, st = _map(path)
        size = len(data)
        h = diskcache.sha256(f"{size}|{st.st_mtime_ns}|{st.st_ino}|{st.st_dev}|".encode())
        h.update(data[:_SAMPLE])
        h.update(data[max(_SAMPLE, size - _SAMPLE):])
        if base is not None:
            h.update(base.identity.encode())
        return cls(data, base=base, name=os.path.basename(path), identity=h.hexdigest()[:_IDENTITY_SIZE], cache=cache)

    @classmethod
    def from_bytes(cls, data: bytes, base: "Btf | None" = None, name: str = "") -> "Btf":
        """A BTF blob in memory; its index is not cached."""
        return cls(bytes(data), base=base, name=name, cache=False)

    @property
    def string_end(self) -> int:
        """One past this file's last string offset: where a split BTF over it starts its own."""
        return self._str_end

    @property
    def identity(self) -> str:
        return self._identity

    def _load_walk(self, identity: str | None, cache: bool) -> _Walk:
        """The kernel walks as fast as the cached walk is read (~6 ms for vmlinux), so its walk is
        not cached; the Python walk (~55 ms) is."""
        self._identity = identity or diskcache.sha256(bytes(self._data)).hexdigest()[:_IDENTITY_SIZE]
        entry = self._lookups_entry()
        self._saved_lookups = diskcache.read(CACHE_FOLDER, entry) if entry else None
        walk = self._walk_in_kernel(hash_names=not self._saved_lookups)
        if walk:
            return walk
        entry = None
        if cache and identity:
            entry = f"{self.name or 'btf'}-{identity[:24]}.idx"
            self.cache_file = os.path.join(diskcache.root(), CACHE_FOLDER, entry)
            walk = self._read_walk(diskcache.read(CACHE_FOLDER, entry))
            if walk:
                self.cache_hit = True
                return walk
        walk = self._walk_in_python()
        if entry:
            self._write_walk(entry, walk)
        return walk

    def _read_walk(self, blob: bytes | None) -> _Walk | None:
        """The walk from a cache entry (whose checksum pybpf.diskcache verified), or None."""
        if blob is None:
            return None
        try:
            magic, n, n_enums, at_starts, ident = struct.unpack_from(_WALK_HEADER, blob, 0)
            body = memoryview(blob)[64:]
            if magic != _INDEX_MAGIC or ident.decode() != self._identity or len(body) != 4 * (2 * n + n_enums):
                return None
            tables = []
            for lo, hi in ((0, n), (n, 2 * n), (2 * n, 2 * n + n_enums)):
                table = _u32s()
                table.frombytes(body[4 * lo:4 * hi])
                tables.append(table)
            return _Walk(*tables, bool(at_starts), None)
        except (struct.error, UnicodeDecodeError, ValueError):
            return None      # another format: walk again

    def _write_walk(self, entry: str, walk: _Walk) -> None:
        head = struct.pack(_WALK_HEADER, _INDEX_MAGIC, len(walk.offsets), len(walk.enum_records),
                           walk.names_at_starts, self._identity.encode())
        diskcache.write(CACHE_FOLDER, entry, head.ljust(64, b"\0") + walk.offsets.tobytes()
                        + walk.names.tobytes() + walk.enum_records.tobytes())

    def _walk_in_kernel(self, hash_names: bool) -> _Walk | None:
        """The walk by the kernel (kernel_walk): ~6 ms for vmlinux instead of ~55; None where no
        walker is set or the kernel does not run it. hash_names: with a hash table of the names
        (~1.7 ms more), made when no earlier run's lookups were kept (a first compile, which looks
        up every name). Small files (modules, a script's types) and split or foreign-endian ones
        are walked in Python."""
        h = self._hdr
        if kernel_walk is None or self.base is not None or h.type_len < _KERNEL_WALK_MIN \
                or h.little != (sys.byteorder == "little"):
            return None
        view = memoryview(self._data)
        found = kernel_walk(view[h.type_off:h.type_off + h.type_len], view[h.str_off:h.str_off + h.str_len],
                            hash_names)
        return _Walk(*found) if found else None

    def _walk_in_python(self) -> _Walk:
        w = self._w.tolist()          # list indexing is the fastest a Python loop gets (~2x a memoryview)
        step = [None if f is None else 3 + f for f in BTF_KIND_FIXED_WORDS]
        per_vlen = BTF_KIND_VLEN_WORDS
        offsets: list[int] = []
        append = offsets.append
        i, n, k = 0, len(w), 0
        try:
            while i < n:
                append(i)
                info = w[i + 1]
                k = (info >> 24) & 0x1F
                i += step[k] + per_vlen[k] * (info & 0xFFFF)
        except TypeError:
            raise BtfError(f"{self.name or 'BTF'}: unknown type kind {k} at type id "
                           f"{self.start_id + len(offsets) - 1}") from None
        except IndexError:
            raise BtfError(f"{self.name or 'BTF'}: type section is truncated") from None
        if i != n:
            raise BtfError(f"{self.name or 'BTF'}: type section is truncated")
        names = [w[o] for o in offsets]
        enums = [idx for idx, o in enumerate(offsets) if (w[o + 1] >> 24) & 0x1F in (6, 19)]
        at_starts = all(map(self._at_string_start, filter(None, names)))
        return _Walk(_u32s(offsets), _u32s(names), _u32s(enums), at_starts, None)

    def _at_string_start(self, off: int) -> bool:
        """Whether a string of the section starts at this offset (not inside another string)."""
        if off < self._str_base:
            return self.base._at_string_start(off)
        rel = off - self._str_base
        h = self._hdr
        return rel < h.str_len and (rel == 0 or self._data[h.str_off + rel - 1] == 0)

    # -- the sorted index, for listing by prefix -----------------------------------------------------

    def _name_index(self) -> array.array:
        """This file's named types' indexes sorted by (name bytes, id): built when a prefix is first
        listed (~50 ms for vmlinux) and cached beside the walk; exact lookups never need it."""
        if self._by_name is not None:
            return self._by_name
        entry = f"{self.name or 'btf'}-{self._identity[:24]}.names" if self._cache else None
        blob = diskcache.read(CACHE_FOLDER, entry) if entry else None
        if blob and blob[:8] == _NAMES_MAGIC and blob[8:48] == self._identity.encode() and len(blob) % 4 == 0:
            by_name = _u32s()
            by_name.frombytes(blob[48:])
        else:
            by_name = self._build_name_index()
            if entry:
                diskcache.write(CACHE_FOLDER, entry, _NAMES_MAGIC + self._identity.encode().ljust(40, b"\0")
                                + by_name.tobytes())
        self._by_name = by_name
        return by_name

    def _build_name_index(self) -> array.array:
        # Split the string section once, offsets by prefix sums.
        h = self._hdr
        parts = bytes(self._data[h.str_off:h.str_off + h.str_len]).split(b"\0")
        starts = map(operator.add, itertools.accumulate(map(len, parts), initial=0),
                     range(self._str_base, self._str_base + len(parts)))
        own = dict(zip(starts, parts))
        name_offs = self._names
        named = [idx for idx, off in enumerate(name_offs) if off]
        keys = [own.get(name_offs[idx]) or self._str_bytes(name_offs[idx]) for idx in named]
        order = sorted(range(len(named)), key=keys.__getitem__)      # stable: equal names by id
        return _u32s([named[j] for j in order])

    # -- exact lookups: a name's string offsets, then the records that name them ---------------------

    def _string_offsets(self, key: bytes, starts_only: bool, within: tuple[int, int] = (0, 1 << 32)
                        ) -> list[int]:
        """The offsets, in this file's and its bases' string sections, whose string is `key`
        (no NUL in it), from within[0] to within[1]; starts_only: only where a string starts, not
        a suffix of a longer one. One search (~0.8 ms for vmlinux's 2.3 MB), memoized."""
        hits = self._string_hits.get((key, starts_only, within))
        if hits is None:
            hits = self.base._string_offsets(key, starts_only, within) if self.base else []
            h, data = self._hdr, self._data
            lo, hi = h.str_off, h.str_off + h.str_len
            first, last = within
            start = max(lo, lo + first - self._str_base - 1)
            end = min(hi, max(lo, lo + last - self._str_base + len(key) + 2))
            pattern = b"\0" + key + b"\0" if starts_only else key + b"\0"
            own = [0] if starts_only and data[lo:lo + len(key) + 1] == key + b"\0" else []
            at = data.find(pattern, start, end)
            while at >= 0:
                own.append(at + starts_only - lo)
                at = data.find(pattern, at + 1, end)
            tail = hi - len(key)       # a last string without its NUL
            if tail >= lo and data[tail:hi] == key and (not starts_only or tail == lo or data[tail - 1] == 0):
                own.append(tail - lo)
            hits += [off for off in (self._str_base + rel for rel in own) if off and first <= off <= last]
            self._string_hits[(key, starts_only, within)] = hits
        return hits

    def _own_ids(self, name: str) -> list[int]:
        """Ids of this file's own types named `name`, in id order."""
        found = self._found_ids.get(name)
        if found is None:
            self._read_lookups()
            found = self._found_ids.get(name)
        if found is None:
            key = name.encode()
            if not key or b"\0" in key:
                by_name = self._name_index()
                lo = bisect.bisect_left(by_name, key, key=self._name_key)
                hi = bisect.bisect_right(by_name, key, lo, key=self._name_key)
                found = sorted(self.start_id + i for i in by_name[lo:hi])
            elif self._name_table:
                found = sorted(self.start_id + i for i in self._hashed(key))
            else:
                found = [self.start_id + i
                         for off in self._string_offsets(key, self._names_at_starts, self._names_within)
                         for i in _indexes(self._names_bytes, off)]
                found.sort()
            self._found_ids[name] = found
            self._new_lookup()
        return found

    def _hashed(self, key: bytes) -> Iterator[int]:
        """The indexes of the records named `key`, from the kernel's hash table of the names: the
        bucket's chain (~1 entry for most names, up to ~1,600 for a 16-byte prefix many share)."""
        heads, chains, bucket = self._name_table
        names, str_bytes = self._names, self._str_bytes
        at = heads[bucket(key)]
        while at:
            if str_bytes(names[at - 1]) == key:
                yield at - 1
            at = chains[at - 1]

    # -- the answers of earlier runs ------------------------------------------------------------------

    def _lookups_entry(self) -> str | None:
        return f"{self.name or 'btf'}-{self._identity[:24]}.lookups" if self._cache else None

    def _read_lookups(self) -> None:
        """The names earlier runs looked up here and what they found (a cache entry beside the
        walk's), so a later run answers them without searching: exact lookups cost ~1 ms each."""
        if self._lookups_read:
            return
        self._lookups_read = True
        blob = self._saved_lookups        # read with the walk
        if not blob:
            return
        import json

        try:
            saved = json.loads(blob)
            if saved.get("identity") != self._identity:
                return
            ids, enums = saved["ids"], saved["enumerators"]
            valid = range(self.start_id, self.end_id)
            if not all(isinstance(n, str) and isinstance(v, list) and all(type(i) is int and i in valid for i in v)
                       for n, v in ids.items()) or \
                    not all(isinstance(n, str) and type(v) is int and (v == 0 or v in valid)
                            for n, v in enums.items()):
                return
        except (ValueError, AttributeError, KeyError, TypeError):
            return           # damaged or another format: search again
        for name, found in ids.items():
            self._found_ids.setdefault(name, found)
        for name, enum_id in enums.items():
            self._found_enums.setdefault(name, enum_id)

    def _new_lookup(self) -> None:
        if self._cache and len(self._found_ids) + len(self._found_enums) <= _MAX_SAVED_LOOKUPS:
            _unsaved[id(self)] = self

    def save_lookups(self) -> None:
        """Write what this file's lookups found to the cache, for the next run."""
        _unsaved.pop(id(self), None)
        entry = self._lookups_entry()
        if entry:
            import json

            diskcache.write(CACHE_FOLDER, entry, json.dumps(
                {"identity": self._identity, "ids": self._found_ids, "enumerators": self._found_enums},
                separators=(",", ":")).encode())

    # -- enumerators --------------------------------------------------------------------------------

    def enumerator(self, name: str) -> tuple[Enum | Enum64, EnumValue] | None:
        """The enum that defines enumerator `name` (AF_INET, TASK_RUNNING), and its value; the base's
        first."""
        if self.base is not None and (found := self.base.enumerator(name)):
            return found
        return self.own_enumerator(name)

    def own_enumerator(self, name: str) -> tuple[Enum | Enum64, EnumValue] | None:
        """enumerator() among this file's own types only: the first enum (by id) with a value of
        that name. Its name's string offsets are looked up among the enumerators' name offsets."""
        enum_id = self._found_enums.get(name)
        if enum_id is None:
            self._read_lookups()
            enum_id = self._found_enums.get(name)
        if enum_id is None:
            names, ids, within = self._enumerator_table()
            key = name.encode()
            if key:
                offsets = self._string_offsets(key, False, within)
                at = min((i for off in offsets for i in _indexes(names, off)), default=None)
            else:
                at = next((i for i, off in enumerate(memoryview(names).cast("I"))
                           if self._str_bytes(off) == key), None)
            enum_id = self._found_enums[name] = 0 if at is None else ids[at]
            self._new_lookup()
        if not enum_id:
            return None
        enum = self.type(enum_id)
        return enum, next(v for v in enum.values if v.name == name)

    def _enumerator_table(self) -> tuple[bytes, list[int], tuple[int, int]]:
        """Every enumerator's name offset (u32s, in id order), its enum's id, and the span of the
        name offsets (vmlinux's lie in the first half of its strings: only that is searched); from
        the walk's enum records (~2 ms for vmlinux's 18,730)."""
        if self._enum_table is None:
            w, offsets = self._w, self._offsets
            names, ids = _u32s(), []
            for idx in self._enum_records:
                i = offsets[idx]
                info = w[i + 1]
                vlen = info & 0xFFFF
                step = 2 if (info >> 24) & 0x1F == 6 else 3
                names.extend(w[i + 3:i + 3 + step * vlen:step])
                ids += [self.start_id + idx] * vlen
            self._enum_table = names.tobytes(), ids, (min(names, default=0), max(names, default=0))
        return self._enum_table

    # -- strings -------------------------------------------------------------------------------------

    def _str_bytes(self, off: int) -> bytes:
        if off < self._str_base:
            return self.base._str_bytes(off)
        rel = off - self._str_base
        h = self._hdr
        if rel >= h.str_len:
            raise BtfError(f"{self.name or 'BTF'}: string offset {off} is outside the string section")
        start = h.str_off + rel
        end = self._data.find(b"\0", start, h.str_off + h.str_len)
        return bytes(self._data[start:end if end >= 0 else h.str_off + h.str_len])

    def string(self, off: int) -> str:
        s = self._strings.get(off)
        if s is None:
            s = self._strings[off] = self._str_bytes(off).decode("utf-8", "replace") if off else ""
        return s

    # -- types ---------------------------------------------------------------------------------------

    @property
    def string_end(self) -> int:
        """One past the last string offset: a split BTF over this one numbers its strings from here."""
        return self._str_end

    def __len__(self) -> int:
        """The number of ids, void and the base's included: ids run from 0 to len(btf) - 1."""
        return self.end_id

    def _owner(self, type_id: int) -> "Btf":
        btf = self
        while type_id < btf.start_id and btf.base is not None:
            btf = btf.base
        return btf

    def type(self, type_id: int) -> AnyType:
        """Decode the type with this id (0 is void). Memoized."""
        t = self._types.get(type_id)
        if t is not None:
            return t
        if type_id == 0:
            t = Void(0, "void")
        elif type_id < self.start_id:
            if self.base is None:
                raise BtfError(f"no BTF type with id {type_id}")
            t = self.base.type(type_id)
        elif type_id >= self.end_id:
            raise BtfError(f"no BTF type with id {type_id} (the last is {self.end_id - 1})")
        else:
            t = self._decode(type_id, self._offsets[type_id - self.start_id])
        self._types[type_id] = t
        return t

    def __getitem__(self, type_id: int) -> AnyType:
        return self.type(type_id)

    def __iter__(self) -> Iterator[AnyType]:
        """This file's own types (not the base's), decoding each."""
        for type_id in range(self.start_id, self.end_id):
            yield self.type(type_id)

    def _decode(self, tid: int, i: int) -> AnyType:
        w, s = self._w, self.string
        name, info, st = s(w[i]), w[i + 1], w[i + 2]
        k, vlen, kflag = (info >> 24) & 0x1F, info & 0xFFFF, info >> 31
        j = i + 3
        if k == 1:
            x = w[j]
            return Int(tid, name, st, (x >> 24) & 0x0F, x & 0xFF, (x >> 16) & 0xFF)
        if k == 2:
            return Ptr(tid, name, st)
        if k == 3:
            return Array(tid, name, w[j], w[j + 1], w[j + 2])
        if k in (4, 5):
            ms = []
            for m in range(j, j + 3 * vlen, 3):
                off = w[m + 2]
                ms.append(Member(s(w[m]), w[m + 1], off & 0xFFFFFF, off >> 24) if kflag
                          else Member(s(w[m]), w[m + 1], off))
            return (Struct if k == 4 else Union)(tid, name, st, tuple(ms))
        if k == 6:
            vals = [EnumValue(s(w[m]), w[m + 1] - ((w[m + 1] >> 31) << 32 if kflag else 0))
                    for m in range(j, j + 2 * vlen, 2)]
            return Enum(tid, name, st, tuple(vals), bool(kflag))
        if k == 19:
            vals = []
            for m in range(j, j + 3 * vlen, 3):
                v = w[m + 1] | (w[m + 2] << 32)
                vals.append(EnumValue(s(w[m]), v - (1 << 64) if kflag and v >> 63 else v))
            return Enum64(tid, name, st, tuple(vals), bool(kflag))
        if k == 7:
            return Fwd(tid, name, bool(kflag))
        if k in (8, 9, 10, 11, 18):
            return {8: Typedef, 9: Volatile, 10: Const, 11: Restrict, 18: TypeTag}[k](tid, name, st)
        if k == 12:
            return Func(tid, name, st, _linkage(vlen))
        if k == 13:
            return FuncProto(tid, name, st, tuple(Param(s(w[m]), w[m + 1]) for m in range(j, j + 2 * vlen, 2)))
        if k == 14:
            return Var(tid, name, st, _linkage(w[j]))
        if k == 15:
            return Datasec(tid, name, st, tuple(VarSecInfo(w[m], w[m + 1], w[m + 2])
                                                for m in range(j, j + 3 * vlen, 3)))
        if k == 16:
            return Float(tid, name, st)
        if k == 17:
            c = w[j]
            return DeclTag(tid, name, st, c - (1 << 32) if c >> 31 else c)
        raise BtfError(f"type id {tid}: unknown kind {k}")

    # -- lookup by name ------------------------------------------------------------------------------

    def _kind_at(self, type_id: int) -> str:
        btf = self._owner(type_id)
        return KIND_NAMES[(btf._w[btf._offsets[type_id - btf.start_id] + 1] >> 24) & 0x1F]

    def _name_key(self, idx: int) -> bytes:
        return self._str_bytes(self._names[idx])

    def find_all(self, name: str, kind: str | tuple[str, ...] | None = None) -> list[int]:
        """Ids of the types with this name (and kind, e.g. 'struct'), the base's first."""
        ids = (self.base.find_all(name, kind) if self.base else []) + self._own_ids(name)
        if kind is None:
            return ids
        kinds = (kind,) if isinstance(kind, str) else kind
        for k in kinds:
            if k not in KINDS:
                raise BtfError(f"unknown BTF kind {k!r}")
        return [i for i in ids if self._kind_at(i) in kinds]

    def find(self, name: str, kind: str | tuple[str, ...] | None = None) -> AnyType | None:
        """The first type with this name (and kind), or None. find('task_struct', 'struct')."""
        ids = self.find_all(name, kind) or (self.find_all(_INT_ALIASES[name], kind) if name in _INT_ALIASES else [])
        if not ids:
            return None
        if kind is None and len(ids) > 1:   # prefer a complete definition over a forward declaration
            ids = [i for i in ids if self._kind_at(i) != "fwd"] or ids
        return self.type(ids[0])

    def find_id(self, name: str, kind: str | tuple[str, ...] | None = None) -> int | None:
        t = self.find(name, kind)
        return None if t is None else t.id

    def names(self, prefix: str = "") -> Iterator[tuple[str, int]]:
        """(name, id) of this file's own named types whose name starts with prefix, sorted by name."""
        key = prefix.encode()
        by_name = self._name_index()
        lo = bisect.bisect_left(by_name, key, key=self._name_key)
        for i in range(lo, len(by_name)):
            idx = by_name[i]
            b = self._name_key(idx)
            if not b.startswith(key):
                break
            yield self.string(self._w[self._offsets[idx]]), self.start_id + idx

    def list_names(self, kind: str, pattern: str = "*") -> list[str]:
        """Sorted, distinct names of this file's own types of a kind matching a shell pattern.

        kind is a BTF kind ('func', 'struct', ...) or a probe kind: 'rawtracepoint' lists the
        tracepoints that have a btf_trace_<name> typedef, 'fentry' (or 'fexit', 'kfunc', 'kretfunc')
        the functions.
        """
        strip = ""
        if kind in ("rawtracepoint", "rt"):
            kind, strip = "typedef", "btf_trace_"
        elif kind in ("fentry", "fexit", "kfunc", "kretfunc", "f", "fr"):
            kind = "func"
        elif kind not in KINDS:
            raise BtfError(f"unknown BTF kind {kind!r}")
        literal = strip + pattern[:min((p for p in (pattern.find(c) for c in "*?[") if p >= 0),
                                       default=len(pattern))]
        out: list[str] = []
        for name, tid in self.names(literal):
            short = name[len(strip):]
            if (not out or out[-1] != short) and fnmatch.fnmatchcase(short, pattern) \
                    and self._kind_at(tid) == kind:
                out.append(short)
        return out

    # -- type algebra --------------------------------------------------------------------------------

    def resolve(self, type_id: int) -> AnyType:
        """The type behind typedefs, const, volatile, restrict and type tags."""
        t = self.type(type_id)
        for _ in range(64):
            if t.kind not in _MODIFIERS:
                return t
            t = self.type(t.type_id)
        raise BtfError(f"type id {type_id}: typedef chain too long (a loop?)")

    def sizeof(self, type_id: int | BtfType) -> int:
        """Size in bytes, through typedefs and modifiers; BtfError for void, functions and forwards."""
        t = self.resolve(type_id if isinstance(type_id, int) else type_id.id)
        if isinstance(t, Ptr):
            return POINTER_SIZE
        if isinstance(t, Array):
            return t.nelems * self.sizeof(t.type_id)
        if isinstance(t, Var):
            return self.sizeof(t.type_id)
        if isinstance(t, (Int, Float, Struct, Enum, Datasec)):
            return t.size
        raise BtfError(f"sizeof of an incomplete type: {self.c_name(t.id)}")

    def members(self, record: int | BtfType) -> tuple[Member, ...]:
        """The direct members of a struct or union (by id or type, through typedefs)."""
        t = self.resolve(record if isinstance(record, int) else record.id)
        if not isinstance(t, Struct):
            raise BtfError(f"{self.c_name(t.id)} is not a struct or union")
        return t.members

    def member(self, record: int | BtfType, name: str) -> Member | None:
        """A member by name, searching anonymous struct/union members as C does; bit_offset summed."""
        fp = self.field_path(record, name)
        return fp.member if fp else None

    def field_path(self, record: int | BtfType, name: str) -> FieldPath | None:
        for m in self.members(record):
            if m.name == name:
                return FieldPath(m, (name,))
        for m in self.members(record):
            if not m.name and isinstance(self.resolve(m.type_id), Struct):
                inner = self.field_path(m.type_id, name)
                if inner:
                    im = inner.member
                    return FieldPath(Member(im.name, im.type_id, m.bit_offset + im.bit_offset,
                                            im.bitfield_size), ("",) + inner.path)
        return None

    def member_names(self, record: int | BtfType) -> list[str]:
        """Every name member() accepts, anonymous members' members included (for 'did you mean')."""
        out = []
        for m in self.members(record):
            if m.name:
                out.append(m.name)
            elif isinstance(self.resolve(m.type_id), Struct):
                out.extend(self.member_names(m.type_id))
        return out

    def offsetof(self, record: int | BtfType, path: str) -> int:
        """Byte offset of a dotted member path, 'a.b.c', through nested records (not pointers)."""
        total, t = 0, record
        for part in path.split("."):
            m = self.member(t, part)
            if m is None:
                raise BtfError(f"{self.c_name(t if isinstance(t, int) else t.id)} has no member {part!r}")
            total += m.bit_offset
            t = m.type_id
        return total // 8

    # -- C names -------------------------------------------------------------------------------------

    def c_name(self, type_id: int | BtfType) -> str:
        """A C type name: 'struct task_struct *', 'const char *', 'int[16]', 'void (*)(int)'."""
        t = self.type(type_id) if isinstance(type_id, int) else type_id
        if isinstance(t, Func):
            return self._decl(t.type_id, t.name)
        if isinstance(t, (Var, DeclTag)):
            return self._decl(t.type_id, t.name if isinstance(t, Var) else "")
        if isinstance(t, Datasec):
            return f"SEC {t.name}"
        return self._decl(t.id, "")

    def declaration(self, type_id: int, name: str) -> str:
        """A C declaration of `name` with the type: 'struct list_head *next', 'char comm[16]'."""
        return self._decl(type_id, name)

    def _decl(self, type_id: int, inner: str) -> str:
        for _ in range(64):
            t = self.type(type_id)
            if isinstance(t, Ptr):
                inner = "*" + inner
            elif isinstance(t, (Const, Volatile, Restrict)):
                if not isinstance(self.type(t.type_id), Ptr):
                    return f"{t.kind} {self._decl(t.type_id, inner)}"
                inner = f"{t.kind} {inner}" if inner else t.kind      # 'char *const p'
            elif isinstance(t, TypeTag):
                pass
            elif isinstance(t, Array):
                if inner.startswith("*"):
                    inner = f"({inner})"
                inner = f"{inner}[{t.nelems}]"
            elif isinstance(t, FuncProto):
                if inner.startswith("*"):
                    inner = f"({inner})"
                params = ", ".join("..." if p == Param("", 0) else self._decl(p.type_id, "")
                                   for p in t.params) or "void"
                inner = f"{inner}({params})"
            else:
                return _join(self._base_name(t), inner)
            type_id = t.type_id
        raise BtfError(f"type id {type_id}: type chain too long (a loop?)")

    def _base_name(self, t: AnyType) -> str:
        if isinstance(t, (Struct, Enum)):
            kw = "enum" if isinstance(t, Enum) else t.kind
            return f"{kw} {t.name or '(anonymous)'}"
        if isinstance(t, Fwd):
            return f"{'union' if t.is_union else 'struct'} {t.name}"
        if isinstance(t, Int):
            return _GCC_INT_NAMES.get(t.name, t.name)
        return t.name or t.kind

    # -- probes --------------------------------------------------------------------------------------

    def func(self, name: str) -> Func | None:
        t = self.find(name, "func")
        return t if isinstance(t, Func) else None

    def func_proto_params(self, func: int | BtfType) -> list[Param]:
        """The parameters of a FUNC, a FUNC_PROTO, or a pointer/typedef to one; '...' excluded."""
        t = self.resolve(func if isinstance(func, int) else func.id)
        if isinstance(t, Func):
            t = self.resolve(t.type_id)
        if isinstance(t, Ptr):
            t = self.resolve(t.type_id)
        if not isinstance(t, FuncProto):
            raise BtfError(f"{self.c_name(t.id)} is not a function")
        return [p for p in t.params if p != Param("", 0)]

    def func_args(self, name: str) -> list[Param]:
        """The arguments of a kernel function, for fentry/fexit: BtfError when BTF has no such FUNC."""
        f = self.func(name)
        if f is None:
            raise BtfError(f"no BTF for function {name!r}")
        return self.func_proto_params(f)

    def func_return(self, name: str) -> int:
        """The return type id of a kernel function (0 for void)."""
        f = self.func(name)
        if f is None:
            raise BtfError(f"no BTF for function {name!r}")
        return self.type(f.type_id).type_id

    def tracepoint_typedef(self, name: str) -> Typedef | None:
        t = self.find("btf_trace_" + name, "typedef")
        return t if isinstance(t, Typedef) else None

    def tracepoint_args(self, name: str) -> list[Param]:
        """A raw tracepoint's arguments: btf_trace_<name>'s params after the leading `void *__data`."""
        t = self.tracepoint_typedef(name)
        if t is None:
            raise BtfError(f"no BTF for raw tracepoint {name!r} (no btf_trace_{name} typedef)")
        params = self.func_proto_params(t.id)[1:]
        # The typedef's prototype has no parameter names; the tracepoint's stub functions do.
        for stub in ("__probestub_", "__traceiter_", "__bpf_trace_"):
            f = self.func(stub + name)
            named = self.func_proto_params(f)[1:] if f else []
            if len(named) == len(params):
                return [Param(n.name or p.name, p.type_id) for p, n in zip(params, named)]
        return [Param(p.name or f"arg{i}", p.type_id) for i, p in enumerate(params)]


def _join(base: str, inner: str) -> str:
    if not inner:
        return base
    if inner[0] == "[":
        return base + inner
    return f"{base} {inner}"


def _linkage(n: int) -> str:
    return LINKAGE_NAMES[n] if n < len(LINKAGE_NAMES) else str(n)


# Files whose lookups found something not yet in their cache entry.
_unsaved: dict[int, Btf] = {}


def save_lookups() -> None:
    """Write each loaded file's new lookups to its cache entry: the compile driver calls this once
    its passes have run."""
    for btf in list(_unsaved.values()):
        btf.save_lookups()


# ---------------------------------------------------------------------------------------------------
# The running kernel's files.

@functools.cache
def _map(path: str):
    """A BTF file's bytes (mapped, else read) and its fstat."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise BtfError(f"BTF is not available: {path} not found") from None
    except OSError as e:
        raise BtfError(f"BTF is not available: cannot open {path}: {e.strerror}") from None
    try:
        st = os.fstat(fd)
        try:     # sysfs maps vmlinux BTF only privately and read-only (kernel >= 6.16)
            return mmap.mmap(fd, 0, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ), st
        except (OSError, ValueError):
            chunks = []
            while chunk := os.read(fd, 1 << 20):
                chunks.append(chunk)
            return b"".join(chunks), st
    finally:
        os.close(fd)


@functools.cache
def strings_with_prefix(prefix: str, path: str | None = None) -> frozenset[str]:
    """The strings of a BTF file that start with prefix, the prefix cut off: one scan of its
    string section, without the type index that Btf builds (~0.15 s for vmlinux with an empty
    cache). `btf_trace_NAME` names only the typedef of tracepoint NAME's raw form."""
    data, _ = _map(path or _kernel_file)
    h = _parse_header(data)
    found = re.findall(rb"\0" + re.escape(prefix.encode()) + rb"([^\0]+)",
                       data[h.str_off:h.str_off + h.str_len])
    return frozenset(name.decode(errors="replace") for name in found)


# The kernel's types: /sys/kernel/btf/vmlinux, or the file BPFTRACE_BTF names (use_file).
_kernel_file = VMLINUX


def use_file(path: str) -> None:
    """Read the kernel's types from `path` (BPFTRACE_BTF) instead of /sys/kernel/btf/vmlinux, and
    no module's: pybpf runs as root, so a file another user could have written is refused, as
    headers are (pybpf.trust). Raises BtfError, one line, when it is refused or not BTF."""
    global _kernel_file
    try:
        real = trust.trusted_file(path)
    except trust.Untrusted as e:
        raise BtfError(f"BPFTRACE_BTF: {path} is not read: {e} (pybpf runs as root and reads only "
                       f"files no other user can write)") from None
    except OSError as e:
        raise BtfError(f"BPFTRACE_BTF: cannot read {path}: {e.strerror}") from None
    try:
        Btf.load(real)
    except BtfError as e:
        raise BtfError(f"BPFTRACE_BTF: {path}: {e}") from None
    _kernel_file = real
    vmlinux.cache_clear()
    strings_with_prefix.cache_clear()


@functools.cache
def vmlinux(path: str | None = None) -> Btf:
    """The running kernel's BTF, loaded once per process (each load maps the file, hashes parts of
    it and reads and checks its index: ~3 ms, which a compile of tcplife.bt paid 21 times)."""
    return Btf.load(path or _kernel_file)


def module_names(folder: str = os.path.dirname(VMLINUX)) -> list[str]:
    """Modules with BTF: the files beside vmlinux in /sys/kernel/btf (none with BPFTRACE_BTF, whose
    file stands for them all, as in bpftrace)."""
    if _kernel_file != VMLINUX:
        return []
    try:
        return sorted(n for n in os.listdir(folder) if n != "vmlinux")
    except OSError:
        return []


@functools.cache
def module(name: str) -> Btf:
    """A module's split BTF, on top of vmlinux's."""
    folder = os.path.dirname(VMLINUX)
    if name == "vmlinux" or "/" in name:
        raise BtfError(f"not a module name: {name!r}")
    if _kernel_file != VMLINUX:
        raise BtfError(f"module {name}'s BTF is not read: BPFTRACE_BTF names the one BTF file")
    return Btf.load(os.path.join(folder, name), base=vmlinux())


def find_in_modules(name: str, kind: str | tuple[str, ...] | None = None) -> list[tuple[str, AnyType]]:
    """(module, type) for each module whose own types define this name. Loads each module's index."""
    out = []
    for mod in module_names():
        btf = module(mod)
        ids = [i for i in btf.find_all(name, kind) if i >= btf.start_id]
        if ids:
            out.append((mod, btf.type(ids[0])))
    return out
