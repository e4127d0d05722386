"""The search space, written as Hydra sweep overrides in `hydra.sweeper.params` (and on the
command line), read into Optuna distributions:

    choice(a, b, c)               -> categorical (a choice of lists is written as quoted strings,
                                     "[ema,r1]": Optuna's categories are scalars)
    range(start, stop[, step])    -> int (float when any bound is a float) on that grid, stop
                                     excluded as in Python
    interval(low, high)           -> float, uniform
    tag(log, interval(low, high)) -> float, log-uniform
    key=value (no sweep)          -> a fixed override every trial gets

The same syntax hydra-optuna-sweeper read, so search configs written for it keep working.
"""

from __future__ import annotations

from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, Transformer
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)


def distribution(override: Override) -> BaseDistribution:
    """The Optuna distribution of one sweep override."""
    value = override.value()
    if override.is_choice_sweep() or (override.is_range_sweep() and value.shuffle):
        return CategoricalDistribution(list(override.sweep_iterator(Transformer.encode)))
    if override.is_range_sweep():
        start, stop, step = value.start, value.stop, value.step
        if any(isinstance(v, float) for v in (start, stop, step)):
            last = start + step * ((stop - start - 1e-12) // step)
            return FloatDistribution(start, last, step=step)
        start, stop, step = int(start), int(stop), int(step)
        return IntDistribution(start, start + step * ((stop - 1 - start) // step), step=step)
    if override.is_interval_sweep():
        return FloatDistribution(float(value.start), float(value.end), log="log" in value.tags)
    raise ValueError(f"hydra.sweeper.params.{override.get_key_element()}: {override.input_line} "
                     "is not a search space (choice, range, interval or tag(log, interval))")


def parse_space(params: dict[str, Any] | None,
                arguments: list[str]) -> tuple[dict[str, BaseDistribution], dict[str, str]]:
    """(distributions, fixed overrides) from `hydra.sweeper.params` plus the command line's
    overrides; a key on the command line replaces the config's (a sweep there is searched, a
    plain value fixes the knob)."""
    lines = [f"{k}={v}" for k, v in (params or {}).items()] + list(arguments)
    space: dict[str, BaseDistribution] = {}
    fixed: dict[str, str] = {}
    for override in OverridesParser.create().parse_overrides(lines):
        key = override.get_key_element()
        space.pop(key, None)
        fixed.pop(key, None)
        if override.is_sweep_override():
            space[key] = distribution(override)
        else:
            fixed[key] = override.get_value_element_as_str()
    return space, fixed


def describe(dist: BaseDistribution) -> str:
    """A distribution as a user reads it: `choice(32, 64, 128)`, `interval [1e-05, 0.001], log`."""
    if isinstance(dist, CategoricalDistribution):
        return f"choice({', '.join(map(str, dist.choices))})"
    grid = f", step {dist.step}" if getattr(dist, "step", None) not in (None, 1) else ""
    kind = "integers" if isinstance(dist, IntDistribution) else "interval"
    return f"{kind} [{dist.low}, {dist.high}]{', log' if dist.log else ''}{grid}"


def outside(key: str, value: Any, dist: BaseDistribution) -> str | None:
    """Why `key=value` is not a point of `dist` (its type, range or choices), or None."""
    if isinstance(dist, CategoricalDistribution):
        matches = [c for c in dist.choices if c == value or str(c) == str(value)]
        return None if matches else f"{key}={value} is not one of {describe(dist)}"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return f"{key}={value} is not a number; the search space is {describe(dist)}"
    if isinstance(dist, IntDistribution) and number != int(number):
        return f"{key}={value} is not an integer; the search space is {describe(dist)}"
    if not dist._contains(dist.to_internal_repr(int(number) if isinstance(
            dist, IntDistribution) else number)):
        return f"{key}={value} is outside the search space {describe(dist)}"
    return None


def value_in(value: Any, dist: BaseDistribution) -> Any:
    """`value` (checked by `outside`) as the distribution holds it: a choice as listed."""
    if isinstance(dist, CategoricalDistribution):
        return next(c for c in dist.choices if c == value or str(c) == str(value))
    return int(float(value)) if isinstance(dist, IntDistribution) else float(value)
