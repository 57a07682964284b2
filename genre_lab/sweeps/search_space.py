"""The sweeper's `params:` grammar (Hydra override syntax) as Optuna distributions, and a trial back as overrides.

``interval(a, b)`` -> float (int when both ends are ints), ``tag(log, interval(a, b))`` -> log scale,
``range(a, b[, step])`` -> int/float with a step, end-exclusive as in Python and Hydra's grid sweeps,
``choice(x, y)`` or ``x,y`` -> categorical, anything else -> a fixed value passed to every trial.
Command-line overrides of the same key win over ``params``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, QuotedString, Transformer
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from genre_lab.errors import GenreLabError

PRIMITIVES = (str, int, float, bool)


@dataclass
class Categorical:
    """Optuna's choices (primitives) and, in the same order, each one as an override value."""

    choices: list[Any]
    rendered: list[str]

    def render(self, value: Any) -> str:
        for choice, text in zip(self.choices, self.rendered, strict=True):
            if type(choice) is type(value) and choice == value:  # 1, 1.0 and True are distinct choices
                return text
        raise ValueError(f"{value!r} is not one of {self.choices}")


@dataclass
class SearchSpace:
    """What every trial of a sweep gets: sampled parameters, and overrides passed unchanged."""

    distributions: dict[str, Any] = field(default_factory=dict)  # key -> optuna distribution
    categoricals: dict[str, Categorical] = field(default_factory=dict)
    fixed: list[str] = field(default_factory=list)  # override strings, as given
    written: dict[str, str] = field(default_factory=dict)  # key -> as the override names it (+key, ++key)

    def suggest(self, trial: Any) -> list[str]:
        """Sample every parameter on ``trial`` (public suggest_* API); the trial's overrides."""
        overrides = list(self.fixed)
        for key, dist in self.distributions.items():
            if isinstance(dist, CategoricalDistribution):
                value = self.categoricals[key].render(trial.suggest_categorical(key, dist.choices))
            elif isinstance(dist, IntDistribution):
                value = str(trial.suggest_int(key, dist.low, dist.high, step=dist.step, log=dist.log))
            elif isinstance(dist, FloatDistribution):
                value = repr(trial.suggest_float(key, dist.low, dist.high, step=dist.step, log=dist.log))
            else:
                raise TypeError(f"unsupported distribution {dist!r}")
            overrides.append(f"{self.written.get(key, key)}={value}")
        return overrides


def parse_search_space(params: Mapping[str, Any] | None, arguments: Sequence[str]) -> SearchSpace:
    """``params`` from the sweeper config, then the command line's overrides (later ones win per key)."""
    lines = [f"{key}={value}" for key, value in (params or {}).items()] + list(arguments)
    by_key: dict[str, Override] = {}
    for override in OverridesParser.create().parse_overrides(lines):
        by_key.pop(override.key_or_group, None)  # re-insert: the winner keeps the command line's order
        by_key[override.key_or_group] = override
    space = SearchSpace()
    for key, override in by_key.items():
        if not override.is_sweep_override():
            space.fixed.append(override.input_line or f"{key}={override.get_value_element_as_str()}")
        elif override.is_hydra_override():
            raise GenreLabError(f"{override.input_line}: the Optuna sweeper does not sweep hydra.* keys")
        else:
            space.written[key] = override.get_key_element()  # +model.x=interval(…) samples +model.x=…
            try:
                space.distributions[key] = to_distribution(override, space, key)
            except ValueError as err:  # Optuna's own checks: low > high, a log scale from 0, …
                why = str(err).rstrip(".")
                raise GenreLabError(f"{override.input_line}: this search space cannot be sampled ({why}); e.g. "
                                    f"{key}=interval(1e-5,1e-3) or {key}=tag(log,interval(1e-5,1e-3))") from None
    return space


def to_distribution(override: Override, space: SearchSpace, key: str) -> Any:
    value = override.value()
    if override.is_interval_sweep():
        log = "log" in value.tags
        if isinstance(value.start, int) and isinstance(value.end, int):
            return IntDistribution(value.start, value.end, log=log)
        return FloatDistribution(float(value.start), float(value.end), log=log)
    if override.is_range_sweep() and not value.shuffle:
        points = list(override.sweep_iterator())
        if not points:
            raise GenreLabError(f"{override.input_line}: the range is empty")
        if all(isinstance(p, int) for p in points):
            return IntDistribution(points[0], points[-1], step=int(value.step))
        return FloatDistribution(float(points[0]), float(points[-1]), step=float(value.step))
    # choice(...), a,b,c, or a shuffled range: categorical over the listed values
    items = list(override.sweep_iterator())
    if not all(x is None or isinstance(x, (*PRIMITIVES, QuotedString)) for x in items):
        raise GenreLabError(f"{override.input_line}: choices must be numbers, strings, booleans or null")
    # Optuna sees the plain values ('a b', not "'a b'"); jobs get them as Hydra writes them
    choices = [x.text if isinstance(x, QuotedString) else x for x in items]
    rendered = [Transformer.str(x) for x in items]
    space.categoricals[key] = Categorical(choices, rendered)
    return CategoricalDistribution(choices)
