"""Runs that differ only in their seed, as one group: mean ± std and a 95 % t-interval of each figure.

A run's ``config_id`` hashes its config as Hydra saved it (interpolations unresolved, so ``${seed}`` and the
output paths read the same in every job) without the keys that do not change the experiment (``seed``, the
``paths`` group, bookkeeping). It is written
into ``metrics.json`` and the loggers' config (W&B: group by ``config_id``), and read back by ``compare`` and
the sweep summary.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
from omegaconf import DictConfig, OmegaConf

# keys that do not make another experiment: the seed itself, where files go (paths: output and cache folders),
# and bookkeeping
NOT_THE_EXPERIMENT = ("seed", "paths", "trial", "resume", "show_traceback")


def config_id(config: Mapping[str, Any]) -> str:
    """The same for two runs whose unresolved configs differ only in ``NOT_THE_EXPERIMENT`` (a composed
    DictConfig is read unresolved: interpolations count as written, not as the paths they resolve to)."""
    if isinstance(config, DictConfig):
        config = OmegaConf.to_container(config, resolve=False)  # type: ignore[assignment]
    kept = {k: v for k, v in config.items() if k not in NOT_THE_EXPERIMENT and k != "hydra"}
    return hashlib.sha1(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()[:10]


def interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """Mean, sample standard deviation and the half-width of the ``level`` t-interval of the mean
    (NaN for the spread of a single value)."""
    n = len(values)
    mean = float(sum(values) / n)
    if n < 2:
        return mean, math.nan, math.nan
    from scipy import stats  # deferred: a second of imports, needed only for groups of several seeds

    std = float(pd.Series(values).std(ddof=1))
    return mean, std, float(stats.t.ppf(0.5 + level / 2, n - 1) * std / math.sqrt(n))


def seed_groups(frame: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """One row per ``config_id`` among the finished runs of ``frame`` (a runs table): the seeds, and for each
    metric ``<metric>`` (mean), ``<metric> std``, ``<metric> ±95%`` (t-interval half-width), best mean first."""
    done = frame[frame.get("status", pd.Series("ok", index=frame.index)).eq("ok")]
    if "config_id" not in done or done.empty:
        return pd.DataFrame()
    rows = []
    for cid, group in done.groupby("config_id", sort=False):
        seeds = sorted(int(s) for s in group["seed"].dropna()) if "seed" in group else []
        row: dict[str, Any] = {"config_id": cid, "seeds": len(group), "seed_values": ",".join(map(str, seeds)),
                               "overrides": shared_overrides(group["overrides"])}
        for metric in metrics:
            values = group[metric].dropna().tolist() if metric in group else []
            if values:
                row[metric], row[f"{metric} std"], row[f"{metric} ±95%"] = interval(values)
        rows.append(row)
    table = pd.DataFrame(rows)
    first = next((m for m in metrics if m in table), None)
    return table.sort_values(first, ascending=False, kind="stable").reset_index(drop=True) if first else table


def shared_overrides(overrides: pd.Series) -> str:
    """The overrides every run of a group has, without its ``seed=``: what the group is."""
    lists = [set(str(o).split()) if isinstance(o, str) and o else set() for o in overrides]
    common = set.intersection(*lists) if lists else set()
    first = str(overrides.iloc[0]).split() if len(overrides) else []
    return " ".join(o for o in first if o in common and not o.startswith("seed="))
