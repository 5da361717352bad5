"""``iss_jax.training``: models, data, the smoothing cache, checkpoints and ``train_and_evaluate``.

Needs the ``[train]`` extra (flax, optax, orbax-checkpoint, ml_collections): ``pip install "iss-jax[train]"``.
The configurations (defaults and the quick / cpu / paper presets) live in ``train/configs/`` of the
repository, in the flax-examples manner; this library reads a config, it never imports one.
"""

try:
  import flax  # noqa: F401
  import ml_collections  # noqa: F401
  import optax  # noqa: F401
  import orbax.checkpoint  # noqa: F401
except ImportError as _e:
  raise ImportError(f"iss_jax.training needs the [train] extra ({_e.name} is missing): "
                    'pip install "iss-jax[train]" (or pip install -e ".[train]" in a clone).') from _e

from iss_jax.training._checkpoint import load_classifier as load_classifier
from iss_jax.training._checkpoint import load_variables as load_variables
from iss_jax.training._data import DatasetNotFoundError as DatasetNotFoundError
from iss_jax.training._data import load_dataset as load_dataset
from iss_jax.training._data import official_test_indices as official_test_indices
from iss_jax.training._models import ResNet as ResNet
from iss_jax.training._models import count_params as count_params
from iss_jax.training._models import create_model as create_model
from iss_jax.training._models import resnet18 as resnet18
from iss_jax.training._models import resnet34 as resnet34
from iss_jax.training._models import resnet50 as resnet50
from iss_jax.training._models import resnet_small as resnet_small
from iss_jax.training._smooth_cache import smooth_dataset as smooth_dataset
from iss_jax.training._train import PROCEDURES as PROCEDURES
from iss_jax.training._train import RESULT_INDEPENDENT_FIELDS as RESULT_INDEPENDENT_FIELDS
from iss_jax.training._train import ConfigError as ConfigError
from iss_jax.training._train import TrainState as TrainState
from iss_jax.training._train import WorkdirConfigMismatchError as WorkdirConfigMismatchError
from iss_jax.training._train import check_workdir as check_workdir
from iss_jax.training._train import sparsity_schedule as sparsity_schedule
from iss_jax.training._train import train_and_evaluate as train_and_evaluate
from iss_jax.training._train import validate_config as validate_config

__all__ = (
    "PROCEDURES",
    "RESULT_INDEPENDENT_FIELDS",
    "ConfigError",
    "DatasetNotFoundError",
    "ResNet",
    "TrainState",
    "WorkdirConfigMismatchError",
    "check_workdir",
    "count_params",
    "create_model",
    "load_classifier",
    "load_dataset",
    "load_variables",
    "official_test_indices",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet_small",
    "smooth_dataset",
    "sparsity_schedule",
    "train_and_evaluate",
    "validate_config",
)
