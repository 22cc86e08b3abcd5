"""Reading and writing BPF maps, and turning a user map into Python values.

    read_user_map(fd, spec, probe_names)     # [((b'bash',), 12), ((b'sshd',), 3)] for @[comm] = count()
    lookup(fd, key_bytes, value_size)        # raw bytes, or None
    items(fd, key_size, value_size)          # every (key, value) as bytes, one BPF_MAP_LOOKUP_BATCH a chunk

Per-CPU maps hold one value per *possible* CPU, each rounded up to 8 bytes; the `value_size` arguments
here are the whole buffer (see value_buffer_size). Aggregations are summed over the CPUs here.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import struct
from collections import defaultdict

from pybpf import types as T
from pybpf.program import MapKind, MapSpec
from pybpf.runtime.errors import BpfError
from pybpf.runtime.syscall import ENOTSUPP, bpf
from pybpf.runtime.values import Stats, decode, decode_slots
from pybpf.uapi.bpf import BPF_ANY, BPF_EXIST, BpfCmd, MapBatchAttr, MapElemAttr

BATCH_CHUNK = 4096          # entries per BPF_MAP_LOOKUP_BATCH call
_I64 = struct.Struct("<q")
_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")
_MINMAX = struct.Struct("<qQ")   # {i64 value, u64 set}
_AVG = struct.Struct("<Qq")      # {u64 count, i64 total}


@functools.cache
def possible_cpus() -> int:
    """Number of possible CPUs, from a list like '0-1' or '0,2-5' (not os.cpu_count(): offline CPUs
    have a slot in per-CPU values too)."""
    with open("/sys/devices/system/cpu/possible") as f:
        text = f.read().strip()
    highest = max(int(part.split("-")[-1]) for part in text.split(","))
    return highest + 1


def value_buffer_size(value_size: int, percpu: bool) -> int:
    return ((value_size + 7) & ~7) * possible_cpus() if percpu else value_size


def _buffer(data: bytes | int) -> ctypes.Array:
    return ctypes.create_string_buffer(data, len(data)) if isinstance(data, bytes) \
        else ctypes.create_string_buffer(data)


def lookup(fd: int, key: bytes, value_size: int) -> bytes | None:
    k, v = _buffer(key), _buffer(value_size)
    try:
        bpf(BpfCmd.MAP_LOOKUP_ELEM, MapElemAttr(map_fd=fd, key=ctypes.addressof(k), value=ctypes.addressof(v)))
    except BpfError as e:
        if e.errno == errno.ENOENT:
            return None
        raise
    return v.raw


def update(fd: int, key: bytes, value: bytes, flags: int = BPF_ANY) -> None:
    k, v = _buffer(key), _buffer(value)
    bpf(BpfCmd.MAP_UPDATE_ELEM, MapElemAttr(map_fd=fd, key=ctypes.addressof(k), value=ctypes.addressof(v),
                                            flags=flags))


def delete(fd: int, key: bytes) -> bool:
    """False when the key was not there."""
    k = _buffer(key)
    try:
        bpf(BpfCmd.MAP_DELETE_ELEM, MapElemAttr(map_fd=fd, key=ctypes.addressof(k)))
    except BpfError as e:
        if e.errno == errno.ENOENT:
            return False
        raise
    return True


def get_next_key(fd: int, key: bytes | None, key_size: int) -> bytes | None:
    """The key after `key` (the first key when None), or None at the end."""
    k, nxt = (_buffer(key) if key is not None else None), _buffer(key_size)
    try:
        bpf(BpfCmd.MAP_GET_NEXT_KEY, MapElemAttr(map_fd=fd, key=ctypes.addressof(k) if k is not None else 0,
                                                 value=ctypes.addressof(nxt)))
    except BpfError as e:
        if e.errno == errno.ENOENT:
            return None
        raise
    return nxt.raw


def keys(fd: int, key_size: int) -> list[bytes]:
    found, key = [], get_next_key(fd, None, key_size)
    while key is not None:
        found.append(key)
        key = get_next_key(fd, key, key_size)
    return found


def items(fd: int, key_size: int, value_size: int) -> list[tuple[bytes, bytes]]:
    """Every entry, read with BPF_MAP_LOOKUP_BATCH (a few syscalls for the whole map); kernels or map
    types without batch lookup fall back to one lookup per key."""
    try:
        return _items_batched(fd, key_size, value_size)
    except BpfError as e:
        if e.errno not in (errno.EINVAL, errno.EOPNOTSUPP, ENOTSUPP):
            raise
    entries = []
    for key in keys(fd, key_size):
        value = lookup(fd, key, value_size)
        if value is not None:          # deleted since get_next_key saw it
            entries.append((key, value))
    return entries


def _items_batched(fd: int, key_size: int, value_size: int) -> list[tuple[bytes, bytes]]:
    chunk = BATCH_CHUNK
    # The position token is opaque (a bucket number for hashes, a key for arrays): key-sized suffices.
    token_in, token_out = _buffer(max(key_size, 8)), _buffer(max(key_size, 8))
    entries, first = [], True
    while True:
        keys_buf, values_buf = _buffer(chunk * key_size), _buffer(chunk * value_size)
        attr = MapBatchAttr(in_batch=0 if first else ctypes.addressof(token_in),
                            out_batch=ctypes.addressof(token_out), keys=ctypes.addressof(keys_buf),
                            values=ctypes.addressof(values_buf), count=chunk, map_fd=fd)
        done = False
        try:
            bpf(BpfCmd.MAP_LOOKUP_BATCH, attr)
        except BpfError as e:
            if e.errno == errno.ENOSPC and attr.count == 0:
                chunk *= 2             # one hash bucket holds more entries than a chunk
                continue
            if e.errno != errno.ENOENT:
                raise
            done = True                # the end; this last call may still have returned entries
        kraw, vraw = keys_buf.raw, values_buf.raw
        entries.extend((kraw[i * key_size:(i + 1) * key_size], vraw[i * value_size:(i + 1) * value_size])
                       for i in range(attr.count))
        if done:
            return entries
        ctypes.memmove(token_in, token_out, len(token_out))
        first = False


def _per_cpu(raw: bytes, value_size: int) -> list[memoryview]:
    stride = (value_size + 7) & ~7
    view = memoryview(raw)
    return [view[i:i + stride] for i in range(0, len(raw), stride)]


@functools.cache
def _i64_per_cpu(count: int) -> struct.Struct:
    return struct.Struct(f"<{count}q")


def read_user_map(fd: int, spec: MapSpec, probe_names: dict[int, str] | None = None,
                  keep_zero: bool = False) -> list[tuple[tuple, object]]:
    """The map's entries as (key tuple, value): see pybpf.runtime.values for the value shapes.

    A per-CPU array (spec.is_array) has all its elements: a zero count there means "never
    counted" and is left out, unless keep_zero (the map was zero()ed, so its entry exists)."""
    hide_zero = spec.is_array and not keep_zero
    raw = items(fd, spec.key_size, value_buffer_size(spec.value_size, spec.percpu))
    kind = spec.kind
    if kind.has_buckets:
        hists: dict[tuple, dict[int, int]] = defaultdict(dict)
        for key, value in raw:
            if spec.is_array:
                user_key, bucket = (), _U32.unpack_from(key)[0]
            else:
                user_key = decode_slots(spec.key, key, 0, probe_names)
                bucket = _U64.unpack_from(key, spec.user_key_size)[0]
            hists[user_key][bucket] = sum(_U64.unpack_from(v)[0] for v in _per_cpu(value, 8))
        if hide_zero and not any(hists[()].values()):
            return []     # an array's buckets all exist: none counted means never used
        return list(hists.items())
    entries = []
    # Per map, not per key: the key's slot layout, and one struct for a value's per-CPU counters.
    key_slots = tuple(zip(spec.key, T.slot_offsets(spec.key)))
    per_cpu_i64 = _i64_per_cpu(len(raw[0][1]) // 8 if raw else 0).unpack_from
    for key, value in raw:
        user_key = () if spec.is_array else tuple(decode(t, key, off, probe_names) for t, off in key_slots)
        if kind is MapKind.VALUE:
            entries.append((user_key, decode(spec.value, value, 0, probe_names)))
        elif kind in (MapKind.COUNT, MapKind.SUM):
            total = sum(per_cpu_i64(value))
            if total or not hide_zero:
                entries.append((user_key, total))
        elif kind in (MapKind.MIN, MapKind.MAX):
            found = [v for v, is_set in (_MINMAX.unpack_from(cpu) for cpu in _per_cpu(value, 16)) if is_set]
            if found:
                entries.append((user_key, (min if kind is MapKind.MIN else max)(found)))
        else:   # AVG, STATS
            pairs = [_AVG.unpack_from(cpu) for cpu in _per_cpu(value, 16)]
            stats = Stats(sum(c for c, _ in pairs), sum(t for _, t in pairs))
            if stats.count or not hide_zero:
                entries.append((user_key, stats))
    return entries


def clear_map(fd: int, spec: MapSpec) -> None:
    """clear(@m): delete every key (an array's elements cannot be deleted: zero them)."""
    if spec.is_array:
        zero_map(fd, spec)
        return
    for key in keys(fd, spec.key_size):
        delete(fd, key)


def zero_map(fd: int, spec: MapSpec) -> None:
    """zero(@m): keep the keys, set every value (on every CPU) to zero."""
    zeros = bytes(value_buffer_size(spec.value_size, spec.percpu))
    for key in keys(fd, spec.key_size):
        try:
            update(fd, key, zeros, BPF_EXIST)
        except BpfError as e:
            if e.errno != errno.ENOENT:     # deleted meanwhile: nothing to zero
                raise


def read_counters(fd: int) -> dict[int, int]:
    """A PERCPU_ARRAY of u64 counters (e.g. MAP_ERRORS_MAP), summed over the CPUs: {index: total}."""
    return {int.from_bytes(key[:4], "little"): sum(_U64.unpack_from(v)[0] for v in _per_cpu(raw, 8))
            for key, raw in items(fd, 4, value_buffer_size(8, True))}


def read_lost(fd: int) -> int:
    """Records the ring buffer refused: LOST_MAP, a PERCPU_ARRAY[1] of u64."""
    raw = lookup(fd, bytes(4), value_buffer_size(8, True))
    return sum(_U64.unpack_from(v)[0] for v in _per_cpu(raw, 8)) if raw else 0
