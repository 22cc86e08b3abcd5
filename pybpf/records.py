"""Light records: what @dataclass gives pybpf's classes, without its cost.

    @record(frozen=True)
    class MapDef:
        name: str
        max_entries: int = 0
        notes: dict = factory(dict)

    MapDef("m") == MapDef("m", 0)     # True; hashable when frozen; MapDef(name='m', ...) as repr

@dataclass generates and exec()s each class's methods (~0.3 ms a class) and imports inspect, ast and
tokenize (~5 ms): on a cache hit, which runs no compiler, that was a quarter of pybpf's import time,
and on a cold compile the AST's and BTF's ~60 classes cost ~25 ms more. Here the methods are shared
and read the fields from the class. Fields are the class's own annotations in order, after those of
a record it subclasses (no ClassVar); defaults are class attributes, factory(f) calls f for each
instance. NamedTuple is typing.NamedTuple for the modules a cached start imports, without importing
typing (~2 ms at every start).
"""

from __future__ import annotations

from collections import namedtuple

TYPE_CHECKING = False       # typing costs ~2 ms at every start; only type checkers read these
if TYPE_CHECKING:
    from typing import NamedTuple as NamedTuple, TypeVar, dataclass_transform
    _Record = TypeVar("_Record")
else:
    def dataclass_transform(**_):
        return lambda decorator: decorator

    class _NamedTupleType(type):
        def __new__(mcls, name, bases, namespace):
            if not bases:
                return super().__new__(mcls, name, bases, namespace)
            fields = tuple(namespace.get("__annotations__", {}))
            defaults = [namespace[f] for f in fields if f in namespace]
            if any(f not in namespace for f in fields[len(fields) - len(defaults):]):
                raise TypeError(f"{name}: a field without a default follows one with a default")
            cls = namedtuple(name, fields, defaults=defaults, module=namespace["__module__"])
            for key, value in namespace.items():
                if key not in fields and key not in ("__module__", "__qualname__", "__annotations__"):
                    setattr(cls, key, value)
            cls.__qualname__, cls.__annotations__ = namespace["__qualname__"], namespace.get("__annotations__", {})
            return cls

    class NamedTuple(metaclass=_NamedTupleType):
        """typing.NamedTuple for the modules a cached start imports, without importing typing:
        `class Stats(NamedTuple): count: int; total: int = 0` makes the same collections.namedtuple,
        with the class's methods and docstring. Type checkers see typing's."""


class FrozenInstanceError(AttributeError):
    pass


class factory:
    """A default made afresh for each instance: factory(dict), as field(default_factory=dict)."""

    __slots__ = ("make",)

    def __init__(self, make):
        self.make = make


_MISSING = object()


@dataclass_transform()
def record(cls=None, *, frozen: bool = False, slots: bool = False, eq: bool = True):
    """Give cls __init__, __repr__, __eq__ (and __hash__ when frozen) over its annotated fields
    (a record's subclass: the base's first; ClassVar annotations are no fields).
    slots=True: the fields are slots (the class is made again, as @dataclass(slots=True) does);
    eq=False: instances compare and hash by identity (the AST's nodes)."""
    def wrap(cls):
        own = tuple(n for n, kind in cls.__dict__.get("__annotations__", {}).items()
                    if not str(kind).startswith(("ClassVar", "typing.ClassVar")))
        inherited = getattr(cls, "_fields", ())          # a record's subclass: its fields first
        names = inherited + tuple(n for n in own if n not in inherited)
        defaults = {**getattr(cls, "_defaults", {}), **{n: cls.__dict__[n] for n in own if n in cls.__dict__}}
        if slots:
            cls = _with_slots(cls, tuple(n for n in own if n not in inherited))
        cls._fields, cls._defaults, cls.__match_args__ = names, defaults, names
        for name, default in defaults.items():
            if isinstance(default, factory) and name in cls.__dict__:
                delattr(cls, name)
        cls.__init__ = _init
        cls.__repr__ = _repr
        if eq and "__eq__" not in cls.__dict__:
            cls.__eq__ = _eq
        if frozen:
            cls.__setattr__ = cls.__delattr__ = _refuse
            if eq and ("__hash__" not in cls.__dict__ or cls.__dict__["__hash__"] is None):
                cls.__hash__ = _hash
        elif eq and "__hash__" not in cls.__dict__:
            cls.__hash__ = None             # mutable and compared by value: unhashable, as @dataclass
        return cls
    return wrap if cls is None else wrap(cls)


def _with_slots(cls, names: tuple[str, ...]):
    """cls made again with its fields as __slots__ (their defaults live in _defaults)."""
    namespace = {k: v for k, v in cls.__dict__.items()
                 if k not in names and k not in ("__dict__", "__weakref__")}
    namespace["__slots__"] = names
    return type(cls)(cls.__name__, cls.__bases__, namespace)


def _init(self, *args, **kwargs):
    names, defaults = self._fields, self._defaults
    if len(args) > len(names):
        raise TypeError(f"{type(self).__name__}() takes {len(names)} arguments, got {len(args)}")
    for name, value in zip(names, args):
        if name in kwargs:
            raise TypeError(f"{type(self).__name__}() got multiple values for argument {name!r}")
        object.__setattr__(self, name, value)
    for name in names[len(args):]:
        value = kwargs.pop(name, _MISSING)
        if value is _MISSING:
            value = defaults.get(name, _MISSING)
            if value is _MISSING:
                raise TypeError(f"{type(self).__name__}() missing argument {name!r}")
            if isinstance(value, factory):
                value = value.make()
        object.__setattr__(self, name, value)
    if kwargs:
        raise TypeError(f"{type(self).__name__}() got an unexpected argument {sorted(kwargs)[0]!r}")


def astuple(obj) -> tuple:
    """The field values in order (shallow: a field holding a record stays one)."""
    return tuple(getattr(obj, n) for n in obj._fields)


def replace(obj: _Record, **changes: object) -> _Record:
    """A copy of obj with some fields changed, as dataclasses.replace."""
    return type(obj)(**{**{n: getattr(obj, n) for n in obj._fields}, **changes})


_values = astuple


def _repr(self) -> str:
    return f"{type(self).__qualname__}({', '.join(f'{n}={getattr(self, n)!r}' for n in self._fields)})"


def _eq(self, other):
    if other.__class__ is not self.__class__:
        return NotImplemented
    return _values(self) == _values(other)


def _hash(self) -> int:
    return hash(_values(self))


def _refuse(self, name, *value):
    raise FrozenInstanceError(f"cannot assign to field {name!r}")
