"""The training arms: the main model ("Ours": top-level skips/alpha/aug) and the ablation arms.

Each ablation arm overrides keys of `ablations.base` (the paper's defaults). The tables read their rows from
the arms that vary one key: Table 6 (skips), Table 7 (aug), the alpha trade-off (alpha); the main model
supplies the row of its own values.
"""

from __future__ import annotations

import dataclasses

from faceres.config.schema import Config
from faceres.models.architecture import skip_nodes, skips_allowed
from faceres.core.errors import ConfigError

MAIN = "main"
ABLATION_KEYS = ("skips", "alpha", "aug")


@dataclasses.dataclass(frozen=True)
class Arm:
    name: str
    skips: int
    alpha: float
    aug: bool
    varies: str | None = None  # the one key an ablation arm changes from the base (None: main or several)

    def not_runnable_reason(self, resolution: int) -> str | None:
        """None if this arm can be trained at `resolution`, else why not (one line)."""
        if self.skips > len(skip_nodes(resolution)):
            return f"skips = {self.skips}: allowed: {skips_allowed(resolution)}"
        return None

    def value(self, key: str) -> int | float | bool:
        return getattr(self, key)


def main_arm(config: Config) -> Arm:
    return Arm(MAIN, config.skips, config.alpha, config.aug)


def list_arms(config: Config) -> list[Arm]:
    """The main model first, then the ablation arms in params order."""
    base = config.ablations.base
    arms = [main_arm(config)]
    for name, override in config.ablations.arms.items():
        values = {k: getattr(override, k) if getattr(override, k) is not None else getattr(base, k) for k in ABLATION_KEYS}
        changed = [k for k in ABLATION_KEYS if getattr(override, k) is not None]
        arms.append(Arm(name, values["skips"], float(values["alpha"]), values["aug"], changed[0] if len(changed) == 1 else None))
    return arms


def find_arm(config: Config, name: str) -> Arm:
    arms = {arm.name: arm for arm in list_arms(config)}
    if name not in arms:
        raise ConfigError(f"arm = {name!r}: allowed: {', '.join(arms)} (params.yaml ablations.arms)")
    return arms[name]


def ablation_rows(config: Config, key: str) -> dict:
    """{value of `key`: arm name} for the table that varies `key`: arms varying only it, plus the main model
    when its other keys equal the base (else its row would not be comparable)."""
    base = config.ablations.base
    rows = {arm.value(key): arm.name for arm in list_arms(config) if arm.varies == key}
    main = main_arm(config)
    others = [k for k in ABLATION_KEYS if k != key]
    if all(main.value(k) == getattr(base, k) for k in others):
        rows.setdefault(main.value(key), MAIN)
    return dict(sorted(rows.items()))
