"""Job configuration: the models, the YAML/JSON loader and the param-space grammar.

Importing this package does not import optuna, mlflow or ray.
"""

from ._loader import load_config, parse_value, read_mapping
from ._models import (
    PRUNERS,
    SAMPLERS,
    AnyJobConfig,
    BaseJobConfig,
    DockerConfig,
    ExperimentConfig,
    GroupConfig,
    JobConfig,
    MetricConfig,
    RayConfig,
    ResourcesConfig,
)
from ._param_space import (
    Distribution,
    ParamSpace,
    flatten_space,
    parse_distribution,
    unflatten_params,
)
from ._param_types import ParamTypeError, check_param

__all__ = [
    "PRUNERS",
    "SAMPLERS",
    "AnyJobConfig",
    "BaseJobConfig",
    "Distribution",
    "DockerConfig",
    "ExperimentConfig",
    "GroupConfig",
    "JobConfig",
    "MetricConfig",
    "ParamSpace",
    "ParamTypeError",
    "RayConfig",
    "ResourcesConfig",
    "check_param",
    "flatten_space",
    "load_config",
    "parse_distribution",
    "parse_value",
    "read_mapping",
    "unflatten_params",
]
