"""The training arms: the main model ("Ours": top-level skips/alpha/aug) and the ablation arms.

Each ablation arm overrides keys of `ablations.base` (the paper's defaults). The tables read their rows from
the arms that vary one key: Table 6 (skips), Table 7 (aug), the alpha trade-off (alpha); the main model
supplies the row of its own values. A replicate is the main model or an arm trained with another training seed
(``ablations.seeds``); it is a method of its own (``<arm>_s<seed>``) and the tables pool it with its arm.
"""

from __future__ import annotations

import dataclasses

from faceres.config.schema import Config, replicate_name
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
    seed: int | None = None  # a replicate's training seed (None: the global seed)
    replicate_of: str | None = None  # a replicate's arm (None: the arm itself)

    @property
    def family(self) -> str:
        """The arm this run replicates (its own name when it is not a replicate)."""
        return self.replicate_of or self.name

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


def list_replicates(config: Config) -> list[Arm]:
    """Every arm again with each of its extra training seeds (``ablations.seeds``), in list_arms' order."""
    replicates = []
    for arm in list_arms(config):
        seeds = config.ablations.seeds.main if arm.name == MAIN else config.ablations.seeds.arms
        replicates += [dataclasses.replace(arm, name=replicate_name(arm.name, seed), seed=seed, replicate_of=arm.name)
                       for seed in seeds]
    return replicates


def list_runs(config: Config) -> list[Arm]:
    """Everything the pipeline trains: the arms, then their replicates."""
    return list_arms(config) + list_replicates(config)


def seeds_of(config: Config, arm_name: str) -> dict[int, str]:
    """{training seed: method name} of an arm's runs, its own (the global seed) first."""
    runs = {config.seed: arm_name}
    runs.update({arm.seed: arm.name for arm in list_replicates(config) if arm.replicate_of == arm_name})
    return runs


def training_config(config: Config, arm: Arm) -> Config:
    """The config a run trains with: a replicate's training seed in place of the global one (the data split and
    the test degradations, made by other stages, keep the global seed)."""
    return config if arm.seed is None else dataclasses.replace(config, seed=arm.seed)


def find_arm(config: Config, name: str) -> Arm:
    arms = {arm.name: arm for arm in list_runs(config)}
    if name not in arms:
        raise ConfigError(f"arm = {name!r}: allowed: {', '.join(arms)} (params.yaml ablations.arms and ablations.seeds)")
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
