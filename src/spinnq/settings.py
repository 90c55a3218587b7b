"""One validation layer for every task's settings: `--set key=value`, CLI flags and
config.json go through the same types and ranges, before any run folder is made.

Settings are frozen dataclasses (defaults in one place). Types come from the annotations
(int, float, bool, str, `X | None`, `tuple[X, ...]`, nested config dataclasses); ranges and
choices from an optional class attribute `LIMITS: ClassVar[dict[str, Limit]]`. A number with
no declared limit must be finite and >= 0 (most settings are sizes, rates or budgets); a
setting that may be negative says so with `Limit()`.

    from spinnq.settings import Limit, SEED, apply_sets, from_json, parse_sets, validate

    @dataclass(frozen=True)
    class TrainConfig:
        LIMITS: ClassVar[dict[str, Limit]] = {"lr": Limit(0, 1, lo_open=True)}
        lr: float = 1e-3
        epochs: int = 10

    cfg = apply_sets(TrainConfig(), parse_sets(["lr=0.01"]))    # --set: text -> typed, checked
    cfg = from_json(TrainConfig, json_dict, file="config.json")  # every key, same checks
    validate(cfg)                                                # a config built in code

Errors are `SettingsError`s (one line: the key, the value, the allowed type or range).
"""

from __future__ import annotations

import dataclasses
import math
import operator
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from spinnq.config import SHORTEST_TICK, WEIGHT_BITS
from spinnq.errors import InputError, SettingsError

_NONE = ("none", "null", "")
_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")
MAX_INT = 2**63 - 1


@dataclass(frozen=True)
class Limit:
    """Allowed values of one setting (each element, for a tuple setting).

    lo/hi: bounds (None: unbounded), inclusive unless lo_open/hi_open; choices: the allowed
    values; pattern: a regular expression a string must match in full; min_len: the
    shortest tuple allowed."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    choices: tuple | None = None
    pattern: str | None = None
    min_len: int = 0

    def describe(self) -> str:
        if self.choices is not None:
            return "one of " + ", ".join(map(str, self.choices))
        if self.pattern is not None:
            return f"matching {self.pattern}"
        lo = "" if self.lo is None else f"{'>' if self.lo_open else '>='} {_num(self.lo)}"
        hi = "" if self.hi is None else f"{'<' if self.hi_open else '<='} {_num(self.hi)}"
        return " and ".join(x for x in (lo, hi) if x) or "a finite number"

    def ok(self, v: Any) -> bool:
        if self.choices is not None:
            return v in self.choices
        if self.pattern is not None:
            return isinstance(v, str) and re.fullmatch(self.pattern, v) is not None
        if isinstance(v, int | float) and not isinstance(v, bool):
            if not math.isfinite(v):
                return False
            if self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo):
                return False
            if self.hi is not None and (v >= self.hi if self.hi_open else v > self.hi):
                return False
        return True


def _num(x: float) -> str:
    return f"{int(x):,}".replace(",", "_") if float(x).is_integer() else f"{x:g}"


DEFAULT_NUMBER = Limit(0)  # no declared limit: finite and >= 0
ANY_NUMBER = Limit()  # may be negative (e.g. a target return)
SEED = Limit(0, 2**32 - 1)  # numpy's legacy seeding takes 32 bits
PERCENTILE = Limit(pattern=r"max|p(100|[1-9]?\d)(\.\d+)?")  # weight-scale percentiles
TICK_S = Limit(0, 10, lo_open=True)  # seconds
DT = Limit(0, 1, lo_open=True)  # seconds
# spinnq sweep: its flags and each --space value (tick_ms: TICK_S in ms; neurons_per_pe: a
# PE's 128 KiB of data memory holds at most 8192 neurons of the smallest, 16-byte state)
SWEEP_FLAGS = {"--seed": SEED, "--samples": Limit(0, 100_000), "--threads": Limit(1, 256),
               "--cpus": Limit(0, 4096), "--episodes": Limit(1, 100_000),
               "--max-energy-mj": Limit(0, 1e12, lo_open=True),
               "--max-latency-ms": Limit(0, 1e12, lo_open=True)}
SPACE_LIMITS = {"timesteps": Limit(0, 100_000), "tick_ms": Limit(0, 10_000, lo_open=True),
                "neurons_per_pe": Limit(0, 8192), "finetune": Limit(0, 10_000)}
ACCURACY = Limit(0, 1)  # a share of samples


# ------------------------------------------------------------------------------ the walk
def _fields(cls: type) -> dict[str, Any]:
    """Field name -> resolved type (annotations are strings under `from __future__`)."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _limit(cls: type, name: str) -> Limit | None:
    return (getattr(cls, "LIMITS", None) or {}).get(name)


def _optional(tp) -> tuple[Any, bool]:
    """(inner type, allows None) for `X | None`."""
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return (args[0] if len(args) == 1 else tp), type(None) in typing.get_args(tp)
    return tp, False


def _describe(tp) -> str:
    inner, opt = _optional(tp)
    if typing.get_origin(inner) is tuple:
        args = typing.get_args(inner)
        name = f"a comma list of {_describe(args[0])}" if args else "a list"
    else:
        name = {int: "an integer", float: "a number", bool: "true or false", str: "text",
                dict: "a mapping"}.get(inner, getattr(inner, "__name__", str(inner)))
    return name + (" or none" if opt else "")


def _from_text(text: str, tp, key: str):
    """`--set` text -> a value of type `tp` (ValueError when it is not one)."""
    inner, opt = _optional(tp)
    t = text.strip()
    if opt and t.lower() in _NONE:
        return None
    if typing.get_origin(inner) is tuple:
        args = typing.get_args(inner)
        elem = args[0] if args else str
        return tuple(_from_text(p, elem, key) for p in t.split(",") if p.strip())
    if inner is bool:
        if t.lower() in _TRUE:
            return True
        if t.lower() in _FALSE:
            return False
        raise ValueError
    if inner is int:
        try:
            return int(t.replace("_", ""))
        except ValueError:
            f = float(t)  # '1e5' is an integer written short
            if not math.isfinite(f) or f != int(f):
                raise ValueError from None
            return int(f)
    if inner is float:
        return float(t)
    if inner is str:
        return t
    raise ValueError  # dicts and other structures are not settable from the command line


def _from_json(v: Any, tp):
    """A JSON value -> a value of type `tp`, strictly (a string is never a number)."""
    inner, opt = _optional(tp)
    if v is None:
        if opt:
            return None
        raise ValueError
    if typing.get_origin(inner) is tuple:
        if not isinstance(v, list | tuple):
            raise ValueError
        args = typing.get_args(inner)
        elem = args[0] if args else Any
        return tuple(v if elem is Any else _from_json(x, elem) for x in v)
    if inner is bool:
        if isinstance(v, bool):
            return v
        raise ValueError
    if inner is int:
        if isinstance(v, int) and not isinstance(v, bool):
            return v
        if isinstance(v, float) and math.isfinite(v) and v == int(v):
            return int(v)
        raise ValueError
    if inner is float:
        if isinstance(v, int | float) and not isinstance(v, bool):
            return float(v)
        raise ValueError
    if inner is str:
        if isinstance(v, str):
            return v
        raise ValueError
    if inner is dict:
        if isinstance(v, dict):
            return v
        raise ValueError
    return v


def _check(cls: type, name: str, tp, v, key: str, src: str, text: str | None = None) -> None:
    """Range/choice check of one (already typed) value; `text`: what the user typed."""
    if v is None:
        return
    lim = _limit(cls, name)
    inner, _ = _optional(tp)
    values = v if isinstance(v, tuple) else (v,)
    if isinstance(v, tuple):
        n = lim.min_len if lim is not None else 1
        if len(v) < n:
            raise SettingsError(f"{src} {key}: needs at least {n} value(s), got none")
    for x in values:
        if isinstance(x, int) and not isinstance(x, bool) and abs(x) > MAX_INT:
            raise SettingsError(f"{src} {key}={x}: out of range")
        use = lim
        if use is None and isinstance(x, int | float) and not isinstance(x, bool):
            use = DEFAULT_NUMBER
        if use is not None and not use.ok(x):
            shown = text if text is not None and not isinstance(v, tuple) else _show(x)
            raise SettingsError(f"{src} {key}={_show(shown)}: must be {use.describe()}")


def _show(v) -> str:
    """A value for a one-line message: short, control characters escaped."""
    s = ",".join(map(str, v)) if isinstance(v, tuple) else str(v)
    if not s.isprintable():
        s = s.encode("unicode_escape").decode("ascii")
    return s if len(s) <= 40 else s[:37] + "..."


# ------------------------------------------------------------------------------ the API
def check_flag(flag: str, value: Any, limit: Limit) -> Any:
    """A CLI flag's value against a limit (e.g. `check_flag("--seed", seed, SEED)`)."""
    if value is not None and not limit.ok(value):
        raise SettingsError(f"{flag} {_show(value)}: must be {limit.describe()}")
    return value


def parse_sets(items: list[str] | tuple[str, ...]) -> dict[str, str]:
    """['dqn.lr=0.001', ...] -> {'dqn.lr': '0.001'}; a malformed item is a SettingsError."""
    out: dict[str, str] = {}
    for it in items:
        k, sep, v = it.partition("=")
        if not sep or not k.strip():
            raise SettingsError(f"--set expects key=value (e.g. dqn.lr=0.001), got {it!r}")
        out[k.strip()] = v.strip()
    return out


def apply_sets(cfg: Any, sets: dict[str, str], src: str = "--set") -> Any:
    """`cfg` with each dotted key set from its text, typed and range-checked like config.json.

    Unknown keys, groups set as a whole and values of the wrong type or range are
    `SettingsError`s naming the key. Cross-field checks run in `validate`."""
    for key, text in sets.items():
        cfg = _set(cfg, key.split("."), text, key, src)
    return cfg


def _set(obj: Any, path: list[str], text: str, key: str, src: str) -> Any:
    cls = type(obj)
    types_ = _fields(cls)
    head = path[0]
    if head not in types_ or head == "LIMITS":
        raise SettingsError(f"{src} {_show(key)}: unknown setting '{_show(head)}' in "
                            f"{cls.__name__} "
                            f"(settings: {', '.join(sorted(types_))})")
    cur = getattr(obj, head)
    if len(path) > 1:
        if not dataclasses.is_dataclass(cur):
            raise SettingsError(f"{src} {key}: '{head}' has no sub-settings")
        return dataclasses.replace(obj, **{head: _set(cur, path[1:], text, key, src)})
    if dataclasses.is_dataclass(cur):
        raise SettingsError(f"{src} {key}: '{head}' is a group; set one of its fields "
                            f"({', '.join(_fields(type(cur)))})")
    tp = types_[head]
    try:
        val = _from_text(text, tp, key)
    except (ValueError, OverflowError):
        raise SettingsError(f"{src} {key}={_show(text)}: expected {_describe(tp)}") from None
    _check(cls, head, tp, val, key, src, text.strip())
    return _replace(obj, head, val, key, src)


def _replace(obj: Any, name: str, val: Any, key: str, src: str) -> Any:
    try:
        return dataclasses.replace(obj, **{name: val})
    except (ValueError, TypeError) as e:  # a config's own __post_init__ check
        raise SettingsError(f"{src} {key}: {e}") from None


def from_json(cls: type, d: Any, *, file: str | None = None, prefix: str = "") -> Any:
    """Rebuild config `cls` from its config.json dict, every value checked like `--set`.

    Every key must be there (a run's config.json is written complete; a missing key means it
    was edited or comes from another version) and no other key may be."""
    src = f"{file}:" if file else "config:"
    if not isinstance(d, dict):
        raise SettingsError(f"{src} {prefix.rstrip('.') or 'config'} must be an object, got "
                            f"{type(d).__name__}")
    types_ = _fields(cls)
    unknown = sorted(set(d) - set(types_))
    if unknown:
        raise SettingsError(f"{src} unknown setting(s) {', '.join(prefix + k for k in unknown)}"
                            f" for {cls.__name__}")
    missing = [k for k in types_ if k not in d]
    if missing:
        raise SettingsError(f"{src} lacks setting(s) {', '.join(prefix + k for k in missing)}"
                            " (written by an older spinnq? start a new run folder)")
    kw = {}
    for name, tp in types_.items():
        key = prefix + name
        if dataclasses.is_dataclass(tp):
            kw[name] = from_json(tp, d[name], file=file, prefix=key + ".")
            continue
        try:
            val = _from_json(d[name], tp)
        except (ValueError, TypeError):
            raise SettingsError(f"{src} {key}={_show(d[name])}: expected "
                                f"{_describe(tp)}") from None
        _check(cls, name, tp, val, key, src)
        kw[name] = val
    try:
        return cls(**kw)
    except (ValueError, TypeError) as e:
        raise SettingsError(f"{src} {e}") from None


def validate(cfg: Any, src: str = "setting", prefix: str = "") -> Any:
    """Check every field of a config built in code (defaults, --quick, flags) like `--set`
    does; then the config's own `check()` (cross-field rules), if it has one."""
    cls = type(cfg)
    for name, tp in _fields(cls).items():
        v = getattr(cfg, name)
        if dataclasses.is_dataclass(v):
            validate(v, src, prefix + name + ".")
        else:
            _check(cls, name, tp, v, prefix + name, src)
    check = getattr(cfg, "check", None)
    if callable(check):
        check()
    return cfg


__all__ = ["ACCURACY", "ANY_NUMBER", "DT", "Limit", "PERCENTILE", "SEED", "SPACE_LIMITS",
           "SWEEP_FLAGS", "TICK_S", "apply_sets",
           "bits_label", "bits_value", "check_flag", "from_json", "merge_bits", "parse_bits",
           "parse_sets", "validate"]


def parse_tick_text(text: str | float, what: str) -> float | str:
    """A tick as the user writes it: 'shortest' (any case), or a positive finite number of
    ms, returned in ms. One parser for `--tick-ms` and the sweep's `tick_ms` key; `what`
    starts the error line ("--tick-ms must be", "--space tick_ms:")."""
    if isinstance(text, str):
        text = text.strip()
        if text.lower() == SHORTEST_TICK:
            return SHORTEST_TICK
    try:
        ms = float(text)
    except ValueError:
        ms = float("nan")
    if not math.isfinite(ms) or ms <= 0:
        raise InputError(f"{what} a positive number of ms or 'shortest', got {text!r}")
    return ms


# ------------------------------------------------------------------- per-population bits
BITS_SEPARATORS = ",;+"  # between a spec's items ('+' where ',' separates choices: --space)


def _width(v: Any, what: str, item: str) -> int:
    try:
        if isinstance(v, bool):
            raise TypeError
        n = int(v) if isinstance(v, str) else operator.index(v)
    except TypeError:
        raise InputError(f"{what} {item}: a width is an integer (8 or 4), got {v!r}") from None
    except ValueError:
        raise InputError(f"{what} takes a width (8 or 4) or NAME=WIDTH items separated by "
                         f"commas (l1=4,l2=8), got {item!r}") from None
    if n not in WEIGHT_BITS:
        raise InputError(f"{what} {item}: SpiNNaker2 stores weights in "
                         f"{' or '.join(map(str, WEIGHT_BITS))} bits, got {n}")
    return n


def parse_bits(value: Any, what: str = "--bits") -> tuple[int | None, dict[str, int]]:
    """A bit-width setting as the user writes it -> (width of every population or None,
    {population: width}). Takes 8, '4', 'l1=4,l2=8', '4,out=8' (a bare width for the
    populations not named), a mapping {population: width}, or None. One parser for
    `--bits`, the graph's `spinnq.bits`, the API's `bits=` and the sweep's `bits` key."""
    if value is None:
        return None, {}
    if isinstance(value, Mapping):
        return None, {str(k): _width(v, what, f"{k}={v}") for k, v in value.items()}
    if not isinstance(value, str):
        return _width(value, what, str(value)), {}
    default, per = None, {}
    items = [t.strip() for t in re.split(f"[{re.escape(BITS_SEPARATORS)}]", value)]
    if not any(items):
        raise InputError(f"{what} takes a width (8 or 4) or NAME=WIDTH items, got {value!r}")
    for item in filter(None, items):
        name, sep, num = item.rpartition("=")
        name = name.strip()
        if sep and not name:
            raise InputError(f"{what} {item}: the population's name is missing")
        if (name in per) if sep else (default is not None):
            raise InputError(f"{what} {value}: {name or 'a bare width'} given twice")
        if sep:
            per[name] = _width(num.strip(), what, item)
        else:
            default = _width(num.strip(), what, item)
    return default, per


def bits_value(default: int | None, per: Mapping[str, int] | None = None) -> int | str:
    """The bit setting as one value (`parse_bits` reads it back to the same): the width when
    every population has it, else '[default,]name=width,...'."""
    if not per:
        return int(default)
    head = [] if default is None else [str(int(default))]
    return ",".join([*head, *(f"{k}={int(v)}" for k, v in per.items())])


def bits_label(value: int | str) -> str:
    """`bits_value`'s value for a line of output: '4 bit', or 'bits 8,l1=4'."""
    return f"{value} bit" if isinstance(value, int) else f"bits {value}"


def merge_bits(default: int, per: Mapping[str, int], spec: Any,
               what: str = "--bits") -> tuple[int, dict[str, int]]:
    """(default, per) with `spec` over it, population by population: a bare width in `spec`
    replaces both (every population not named takes it); names alone override theirs."""
    d, p = parse_bits(spec, what)
    if d is not None:
        return d, p
    return int(default), {**per, **p}
