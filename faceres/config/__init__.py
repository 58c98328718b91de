"""Typed configuration: the schema of params.yaml (:mod:`faceres.config.schema`) and the generic loader that
validates it once at the edge (:mod:`faceres.config.loader`)."""

from faceres.config.loader import parse_override, set_dotted, to_flat_dict
from faceres.config.schema import (
    ARM_NAME,
    MAX_SKIPS,
    MBSTD_GROUP,
    PARAMS_FILE,
    REFERENCE_RESOLUTION,
    SPLITS,
    TASKS,
    AblationConfig,
    ArmConfig,
    AugmentConfig,
    BFRConfig,
    Config,
    DataConfig,
    DegradeConfig,
    EvaluateConfig,
    FolderConfig,
    PrecisionMode,
    ProfileConfig,
    ReportConfig,
    RestoreConfig,
    SRConfig,
    TrackingConfig,
    TrainConfig,
    check_ks,
    check_task,
    config_from_dict,
    load_config,
    skip_nodes,
    skips_allowed,
)

__all__ = [
    "ARM_NAME", "MAX_SKIPS", "MBSTD_GROUP", "PARAMS_FILE", "REFERENCE_RESOLUTION", "SPLITS", "TASKS",
    "AblationConfig", "ArmConfig", "AugmentConfig", "BFRConfig", "Config", "DataConfig", "DegradeConfig",
    "EvaluateConfig", "FolderConfig", "PrecisionMode", "ProfileConfig", "ReportConfig", "RestoreConfig", "SRConfig",
    "TrackingConfig", "TrainConfig", "check_ks", "check_task", "config_from_dict", "load_config", "parse_override",
    "set_dotted", "skip_nodes", "skips_allowed", "to_flat_dict",
]
