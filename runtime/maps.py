"""Reading and writing BPF maps, and turning a user map into Python values.

    read_user_map(fd, spec, probe_names)     # [((b'bash',), 12), ((b'sshd',), 3)] for @[comm] = count()
    lookup(fd, key_bytes, value_size)        # raw bytes, or None
    items(fd, key_size, value_size)          # every (key, value) as bytes, one BPF_MAP_LOOKUP_BATCH a chunk

Per-CPU maps hold one value per *possible* CPU, each rounded up to 8 bytes; the `value_size` arguments
here are the whole buffer (see value_buffer_size). Reading a whole map, the keys are decoded here
and the values by the map's kind, which combines the CPUs.
"""

from __future__ import annotations

import ctypes
import errno
import struct
from collections.abc import Callable, Iterable, Iterator

from pybpf import types as T
from pybpf.cpus import cpu_slots
from pybpf.mapkinds import kind_for
from pybpf.program import MapSpec
from pybpf.records import record
from pybpf.runtime.errors import ENOTSUPP, BpfError
from pybpf.runtime.syscall import bpf
from pybpf.runtime.values import decode
from pybpf.uapi.bpf import BPF_ANY, BPF_EXIST, BpfCmd, MapBatchAttr, MapElemAttr

BATCH_CHUNK = 4096          # entries per BPF_MAP_LOOKUP_BATCH call
_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")


def value_buffer_size(value_size: int, percpu: bool) -> int:
    return ((value_size + 7) & ~7) * cpu_slots() if percpu else value_size


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
    keys_raw, values_raw, count = _read_all(fd, key_size, value_size)
    return [(keys_raw[i * key_size:(i + 1) * key_size], values_raw[i * value_size:(i + 1) * value_size])
            for i in range(count)]


def _read_all(fd: int, key_size: int, value_size: int) -> tuple[bytes, bytes, int]:
    """Every entry as two packed buffers (the keys back to back, then the values) and their number:
    the form struct.iter_unpack decodes without a slice per entry."""
    batches = list(_batches(fd, key_size, value_size))
    if len(batches) == 1:
        return batches[0]
    return (b"".join(k for k, _, _ in batches), b"".join(v for _, v, _ in batches),
            sum(n for _, _, n in batches))


def _batches(fd: int, key_size: int, value_size: int) -> Iterator[tuple[bytes, bytes, int]]:
    """The entries a BPF_MAP_LOOKUP_BATCH call at a time, each as (keys, values, number), so a
    reader can keep only what it needs of a big map; kernels or map types without batch lookup
    give one batch read a key at a time."""
    given = False
    try:
        for batch in _items_batched(fd, key_size, value_size):
            given = True
            yield batch
        return
    except BpfError as e:
        if given or e.errno not in (errno.EINVAL, errno.EOPNOTSUPP, ENOTSUPP):
            raise
    found_keys, found_values = [], []
    for key in keys(fd, key_size):
        value = lookup(fd, key, value_size)
        if value is not None:          # deleted since get_next_key saw it
            found_keys.append(key)
            found_values.append(value)
    yield b"".join(found_keys), b"".join(found_values), len(found_keys)


def _items_batched(fd: int, key_size: int, value_size: int) -> Iterator[tuple[bytes, bytes, int]]:
    chunk = BATCH_CHUNK
    # The position token is opaque (a bucket number for hashes, a key for arrays): key-sized suffices.
    token_in, token_out = _buffer(max(key_size, 8)), _buffer(max(key_size, 8))
    first, empty = True, True
    keys_buf = values_buf = None
    while True:
        if keys_buf is None:
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
                keys_buf = None
                continue
            if e.errno != errno.ENOENT:
                raise
            done = True                # the end; this last call may still have returned entries
        count = attr.count
        if count:                      # only the filled part of the buffers
            empty = False
            yield (ctypes.string_at(keys_buf, count * key_size),
                   ctypes.string_at(values_buf, count * value_size), count)
        if done:
            if empty:
                yield b"", b"", 0
            return
        ctypes.memmove(token_in, token_out, len(token_out))
        first = False


def _per_cpu(raw: bytes, value_size: int) -> list[memoryview]:
    stride = (value_size + 7) & ~7
    view = memoryview(raw)
    return [view[i:i + stride] for i in range(0, len(raw), stride)]


_INT_FIELDS = {(1, True): "b", (1, False): "B", (2, True): "h", (2, False): "H",
               (4, True): "i", (4, False): "I", (8, True): "q", (8, False): "Q"}


def _int_slots_layout(types: tuple[T.Type, ...]) -> str | None:
    """The struct fields of slots that hold only integers ('q', 'I4x', ...), or None when a slot
    holds a string, probe, tuple or bool (those take the generic decode)."""
    fields = []
    for t in types:
        if type(t) is not T.IntType or t.boolean or (t.size, t.signed) not in _INT_FIELDS:
            return None
        pad = T.slot_size(t) - t.size
        fields.append(_INT_FIELDS[t.size, t.signed] + (f"{pad}x" if pad else ""))
    return "".join(fields)


def _key_tuples(spec: MapSpec, keys_raw: bytes, count: int, probe_names: dict[int, str] | None,
                bucket: bool) -> Iterable[tuple]:
    """The user keys of `count` packed BPF keys, as tuples; with `bucket`, each followed by its u64
    bucket index (hist and lhist maps)."""
    layout = _key_layout(spec)
    if layout is not None:
        # One struct for the whole key: iter_unpack yields the key tuples themselves.
        key_struct = struct.Struct("<" + layout + ("Q" if bucket else ""))
        return key_struct.iter_unpack(keys_raw) if count else iter(())
    user_keys = _keys_at(spec, keys_raw, range(count), probe_names)
    if not bucket:
        return user_keys
    size, bucket_at = spec.key_size, spec.user_key_size
    return [key + _U64.unpack_from(keys_raw, i * size + bucket_at) for i, key in enumerate(user_keys)]


def _key_layout(spec: MapSpec) -> str | None:
    """The struct fields of a key of integers only (a scalar's zero key: padding), else None."""
    return _int_slots_layout(spec.key) if spec.key else f"{spec.user_key_size}x"


def _keys_at(spec: MapSpec, keys_raw: bytes, indexes: Iterable[int],
             probe_names: dict[int, str] | None) -> list[tuple]:
    """The user keys of the packed BPF keys at these indexes."""
    size, layout = spec.key_size, _key_layout(spec)
    if layout is not None:
        unpack = struct.Struct("<" + layout).unpack_from
        return [unpack(keys_raw, i * size) for i in indexes]
    slots = tuple(zip(spec.key, T.slot_offsets(spec.key)))
    return [tuple(decode(t, keys_raw, i * size + off, probe_names) for t, off in slots) for i in indexes]


def _typed_values(t: T.Type, raw: bytes, size: int, probe_names: dict[int, str] | None) -> Iterable:
    """The values of type t laid `size` bytes apart in raw (plain value maps): integers in one
    iter_unpack, others through decode."""
    fields = _int_slots_layout((t,))
    if fields is not None:
        return (v for (v,) in struct.Struct("<" + fields).iter_unpack(raw))
    return (decode(t, raw, at, probe_names) for at in range(0, len(raw), size))


def read_user_map(fd: int, spec: MapSpec, probe_names: dict[int, str] | None = None,
                  keep_zero: bool = False) -> list[tuple[tuple, object]]:
    """The map's entries as (key tuple, value): the map's kind (pybpf.mapkinds) decodes the values
    (int, str, tuple, Stats or {bucket index: count}).

    A per-CPU array (spec.is_array) has all its elements: a zero count there means "never
    counted" and is left out, unless keep_zero (the map was zero()ed, so its entry exists)."""
    batches = [batch.entries for batch in user_map_batches(fd, spec, probe_names, keep_zero)]
    return batches[0] if len(batches) == 1 else [e for entries in batches for e in entries]


@record(frozen=True)
class MapBatch:
    """What one read of a map's elements gave: `elements` read (a hist key has one per bucket),
    the entries they make (`seen`), and those entries (those a prefilter kept)."""
    elements: int
    seen: int
    entries: list[tuple[tuple, object]]


Prefilter = Callable[[list[tuple[int, object]]], Iterable[tuple[int, object]]]


def user_map_batches(fd: int, spec: MapSpec, probe_names: dict[int, str] | None = None,
                     keep_zero: bool = False, prefilter: Prefilter | None = None) -> Iterator[MapBatch]:
    """read_user_map's entries a batch of the map at a time: a reader that keeps a few entries of
    a big map never holds all of them. A hist or lhist map comes in one batch (a key's buckets are
    elements apart in the map). `prefilter`, given a batch's entries as (index, value) before any
    key is decoded, returns those to keep: only their keys are decoded (maps with keys and
    without buckets; the others' entries are all given)."""
    # Every property of the spec is read once here, never per entry.
    kind, is_array = kind_for(spec.kind), spec.is_array
    value_size = value_buffer_size(spec.value_size, kind.percpu)
    batches = iter([_read_all(fd, spec.key_size, value_size)]) if kind.has_buckets \
        else _batches(fd, spec.key_size, value_size)
    ncpu = cpu_slots() if kind.percpu else 1
    typed_values = lambda t, raw, size: _typed_values(t, raw, size, probe_names)     # noqa: E731
    hide_zero = is_array and not keep_zero
    if is_array or kind.has_buckets:
        prefilter = None
    for keys_raw, values_raw, count in batches:
        if not count:
            yield MapBatch(0, 0, [])
            continue
        if prefilter is not None:
            kept = list(prefilter(kind.entries(spec, range(count), values_raw, ncpu, hide_zero, typed_values)))
            keys = _keys_at(spec, keys_raw, (i for i, _ in kept), probe_names)
            yield MapBatch(count, count, [(key, value) for key, (_, value) in zip(keys, kept)])
            continue
        if not is_array:
            keys = _key_tuples(spec, keys_raw, count, probe_names, bucket=kind.has_buckets)
        elif kind.has_buckets:
            keys = _U32.iter_unpack(keys_raw)      # an array's key is the u32 bucket, after an empty user key
        else:
            keys = [()] * count
        entries = kind.entries(spec, keys, values_raw, ncpu, hide_zero, typed_values)
        yield MapBatch(count, len(entries), entries)


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
    """A PERCPU_ARRAY of u64 counters (e.g. HELPER_ERRORS_MAP), summed over the CPUs: {index: total}."""
    return {int.from_bytes(key[:4], "little"): sum(_U64.unpack_from(v)[0] for v in _per_cpu(raw, 8))
            for key, raw in items(fd, 4, value_buffer_size(8, True))}


def read_lost(fd: int) -> int:
    """Records the ring buffer refused: LOST_MAP, a PERCPU_ARRAY[1] of u64."""
    return read_counters(fd).get(0, 0)
