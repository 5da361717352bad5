"""``iss_jax.training``: models, data, the smoothing cache, checkpoints and ``train_and_evaluate``.

Needs the ``[train]`` extra (flax, optax, orbax-checkpoint, ml_collections): ``pip install "iss-jax[train]"``.
The configurations (defaults and the quick / cpu / paper presets) live in ``train/configs/`` of the
repository, in the flax-examples manner; this library reads a config, it never imports one. What each field
may hold and means is :data:`CONFIG_SCHEMA`, the one table of fields.
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
from iss_jax.training._checkpoint import workdir_config as workdir_config
from iss_jax.training._config_schema import CONFIG_SCHEMA as CONFIG_SCHEMA
from iss_jax.training._config_schema import PROCEDURES as PROCEDURES
from iss_jax.training._config_schema import RESULT_INDEPENDENT_FIELDS as RESULT_INDEPENDENT_FIELDS
from iss_jax.training._config_schema import ConfigError as ConfigError
from iss_jax.training._config_schema import Field as Field
from iss_jax.training._config_schema import TrainingDivergedError as TrainingDivergedError
from iss_jax.training._config_schema import WorkdirConfigMismatchError as WorkdirConfigMismatchError
from iss_jax.training._config_schema import check_workdir as check_workdir
from iss_jax.training._config_schema import validate_config as validate_config
from iss_jax.training._cpu import EIGEN_CONVOLUTION_FLAGS as EIGEN_CONVOLUTION_FLAGS
from iss_jax.training._cpu import use_fast_cpu_training as use_fast_cpu_training
from iss_jax.training._data import DatasetNotFoundError as DatasetNotFoundError
from iss_jax.training._data import imagenet100_classes as imagenet100_classes
from iss_jax.training._data import load_dataset as load_dataset
from iss_jax.training._data import miniimagenet_test_indices as miniimagenet_test_indices
from iss_jax.training._data import official_test_indices as official_test_indices
from iss_jax.training._defended_models import DefendedModel as DefendedModel
from iss_jax.training._defended_models import build_model as build_model
from iss_jax.training._models import ResNet as ResNet
from iss_jax.training._models import ViT as ViT
from iss_jax.training._models import count_params as count_params
from iss_jax.training._models import create_model as create_model
from iss_jax.training._models import default_patch_size as default_patch_size
from iss_jax.training._models import resnet18 as resnet18
from iss_jax.training._models import resnet34 as resnet34
from iss_jax.training._models import resnet50 as resnet50
from iss_jax.training._models import resnet_small as resnet_small
from iss_jax.training._models import vit_tiny as vit_tiny
from iss_jax.training._smooth_cache import smooth_dataset as smooth_dataset
from iss_jax.training._smooth_cache import smooth_training_set as smooth_training_set
from iss_jax.training._train import TrainingData as TrainingData
from iss_jax.training._train import TrainState as TrainState
from iss_jax.training._train import load_training_data as load_training_data
from iss_jax.training._train import sparsity_schedule as sparsity_schedule
from iss_jax.training._train import train_and_evaluate as train_and_evaluate

__all__ = (
    "CONFIG_SCHEMA",
    "EIGEN_CONVOLUTION_FLAGS",
    "PROCEDURES",
    "RESULT_INDEPENDENT_FIELDS",
    "ConfigError",
    "DatasetNotFoundError",
    "TrainingDivergedError",
    "DefendedModel",
    "Field",
    "ResNet",
    "TrainState",
    "TrainingData",
    "ViT",
    "WorkdirConfigMismatchError",
    "build_model",
    "check_workdir",
    "count_params",
    "create_model",
    "default_patch_size",
    "imagenet100_classes",
    "load_classifier",
    "load_dataset",
    "load_training_data",
    "load_variables",
    "miniimagenet_test_indices",
    "official_test_indices",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet_small",
    "smooth_dataset",
    "smooth_training_set",
    "sparsity_schedule",
    "train_and_evaluate",
    "use_fast_cpu_training",
    "validate_config",
    "vit_tiny",
    "workdir_config",
)
