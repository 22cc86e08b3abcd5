"""bpftrace's config variables: one table, set by a script's `config = { ... }` block and by the
BPFTRACE_* environment variables, the environment winning (as in bpftrace 0.26).

    config = { max_map_keys = 2; missing_probes = warn }
    BEGIN { ... }

    settings = resolve_settings(program.config, environment(os.environ), diags)
    settings.max_map_keys                      # 2, or BPFTRACE_MAX_MAP_KEYS when it is set

A name may be written `max_map_keys`, `MAX_MAP_KEYS` or `BPFTRACE_MAX_MAP_KEYS`. A name that is no
setting is an error; a setting pybpf does not implement is accepted with a warning.
"""

from __future__ import annotations

import mmap

from pybpf.diagnostics import NO_SPAN, Diagnostics
from pybpf.program import RINGBUF_MAX_SIZE
from pybpf.records import factory, record
from pybpf.types import MAX_STRLEN, STRING_SIZE

TYPE_CHECKING = False
if TYPE_CHECKING:         # the CLI reads the environment's settings on every start: no AST there
    from pybpf import ast

ENV_PREFIX = "BPFTRACE_"


@record(frozen=True)
class Setting:
    name: str
    kind: str                 # 'integer', 'boolean', 'string', or a choice 'error|warn|ignore'
    default: object
    what: str                 # what it changes in pybpf (or, unimplemented, in bpftrace)
    implemented: bool = True
    # The variable's older names (bpftrace 0.17's BPFTRACE_STRLEN), read when the current is unset.
    old_env: tuple[str, ...] = ()
    # integers: the largest value pybpf takes (None: no bound), and the smallest when bounded
    most: int | None = None
    least: int = 1

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def choices(self) -> tuple[str, ...]:
        return tuple(self.kind.split("|")) if "|" in self.kind else ()


_UNSTABLE = "error|warn|enable"

SETTINGS = {s.name: s for s in (
    Setting("max_map_keys", "integer", 4096, "the entries of each map (--map-entries overrides it)",
            old_env=("BPFTRACE_MAP_KEYS_MAX",)),
    Setting("max_probes", "integer", 1024, "the most attach points a program may have"),
    # pybpf's default stays 64 bytes (bpftrace 0.17's): every string slot, map key and record is
    # that size, and the in-kernel cost grows with it (docs/language.md, Strings).
    Setting("max_strlen", "integer", STRING_SIZE,
            "the size of str(), of __data_loc strings and of buf() by default, NUL included",
            old_env=("BPFTRACE_STRLEN",), most=MAX_STRLEN),
    Setting("missing_probes", "error|warn|ignore", "error",
            "a probe that does not exist here: an error, a warning and left out, or left out"),
    Setting("print_maps_on_exit", "boolean", True, "whether the maps are printed at exit"),
    Setting("cache_user_symbols", "PER_PROGRAM|PER_PID|NONE", "PER_PID",
            "how user-space symbols are cached", implemented=False),
    Setting("cpp_demangle", "boolean", True, "C++ names demangled in user stacks", implemented=False),
    Setting("lazy_symbolication", "boolean", False, "user symbols resolved on demand",
            implemented=False),
    Setting("license", "string", "GPL", "the license the programs are loaded with",
            implemented=False),
    # The kernel takes a log of 128 bytes to UINT32_MAX >> 2 (bpf_verifier_log_attr_valid).
    Setting("log_size", "integer", 1000000, "the size of the verifier log's buffer, in bytes "
            "(the kernel keeps the log's end when it is longer)", most=(1 << 30) - 1, least=128),
    Setting("max_bpf_progs", "integer", 1024, "the most BPF programs a script may load"),
    Setting("max_cat_bytes", "integer", 10240, "the bytes cat() prints at most",
            old_env=("BPFTRACE_CAT_BYTES_MAX",)),
    Setting("on_stack_limit", "integer", 32, "the largest value kept on the BPF stack",
            implemented=False),
    # 0, as in bpftrace 0.26: sized by pybpf (program.event_ring_size).
    Setting("perf_rb_pages", "integer", 0, "the pages of the event ring buffer, rounded up to a "
            "power of two and at least one a CPU; 0: sized to the script (--ringbuf-size "
            "overrides it)", most=RINGBUF_MAX_SIZE // mmap.PAGESIZE, least=0),
    Setting("show_debug_info", "boolean", True, "file and line in stacks", implemented=False),
    Setting("stack_mode", "bpftrace|perf|raw", "bpftrace",
            "how kstack and ustack print where the call names no mode"),
    Setting("str_trunc_trailer", "string", "..", "the trailer of a truncated string",
            implemented=False),
    Setting("unstable_map_decl", _UNSTABLE, "warn", "map declarations", implemented=False),
    Setting("unstable_tseries", _UNSTABLE, "warn", "the tseries map kind", implemented=False),
    Setting("unstable_addr", _UNSTABLE, "warn", "the & operator", implemented=False),
)}


class SettingError(ValueError):
    """A BPFTRACE_* variable whose value does not fit its setting."""


@record
class Settings:
    values: dict[str, object] = factory(lambda: {name: s.default for name, s in SETTINGS.items()})

    def __getattr__(self, name: str):
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None


# bpftrace's environment variables that are not settings (no config block name), which the
# command reads itself: the kernel's BTF file (pybpf.btf.use_file).
COMMAND_ENVIRONMENT = ("BPFTRACE_BTF",)


def find(name: str) -> Setting | None:
    """The setting `name` spells: max_map_keys, MAX_MAP_KEYS or BPFTRACE_MAX_MAP_KEYS."""
    key = name.lower()
    if key.startswith(ENV_PREFIX.lower()):
        key = key[len(ENV_PREFIX):]
    return SETTINGS.get(key)


def _typed(setting: Setting, value: object, written: str = "") -> object:
    """value (an int, or a word or string as written) converted to the setting's type; raises
    ValueError with bpftrace's wording, naming the setting as `written`."""
    written = written or setting.name
    got = "integer" if isinstance(value, int) else "string"
    if setting.kind == "integer":
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if not isinstance(value, int) or value < 0:
            raise ValueError(f"Invalid type for {written}. Type: {got}. Expected Type: integer")
        if setting.most is not None and not setting.least <= value <= setting.most:
            raise ValueError(f"{written} must be between {setting.least} and {setting.most}, "
                             f"got {value}")
        return value
    if setting.kind == "boolean":
        if value in (0, 1, "0", "1"):
            return bool(int(value))
        if value in ("true", "false"):
            return value == "true"
        raise ValueError(f"Invalid value for {written}: {value} (expected true, false, 0 or 1)")
    if setting.choices:
        if str(value).lower() in (c.lower() for c in setting.choices):
            return next(c for c in setting.choices if c.lower() == str(value).lower())
        raise ValueError(f"Invalid value for {written}: {value} (expected one of "
                         f"{', '.join(setting.choices)})")
    return str(value)


def environment(env) -> tuple[tuple[str, str], ...]:
    """The BPFTRACE_* variables that name settings, checked: what the compiler is given (and what
    the compile cache's key covers). Raises SettingError on a value that does not fit."""
    out = []
    for setting in SETTINGS.values():
        name = next((n for n in (setting.env,) + setting.old_env if n in env), None)
        if name is None:
            continue
        text = env[name]
        try:
            if setting.kind == "integer" and not text.strip().isdigit():
                raise ValueError
            _typed(setting, text)
        except ValueError:
            expected = "a number" if setting.kind == "integer" else (
                "one of " + ", ".join(setting.choices) if setting.choices else "true or false")
            if setting.most is not None:
                expected = f"a number from {setting.least} to {setting.most}"
            raise SettingError(f"{name}: expecting {expected}, got {text}") from None
        out.append((setting.name, text))
    return tuple(out)


def resolve_settings(config: tuple[ast.ConfigItem, ...], env: tuple[tuple[str, str], ...],
                     diags: Diagnostics) -> Settings:
    """The defaults, then the script's config block, then the environment."""
    settings = Settings()
    set_by_env = dict(env)
    for item in config:
        setting = find(item.name)
        if setting is None:
            diags.error(f"Unrecognized config variable: {item.name}", item.span)
            continue
        try:
            value = _typed(setting, item.value, item.name)
        except ValueError as e:
            diags.error(str(e), item.span)
            continue
        if not setting.implemented:
            diags.warning(f"{setting.name} is accepted but not implemented by pybpf: it has no "
                          "effect", item.span)
        if setting.name not in set_by_env:
            settings.values[setting.name] = value
    for name, text in env:
        settings.values[name] = _typed(SETTINGS[name], text)
        if not SETTINGS[name].implemented:
            diags.warning(f"{SETTINGS[name].env} is accepted but not implemented by pybpf: it has "
                          "no effect", NO_SPAN)
    return settings
