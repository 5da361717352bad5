"""iss-jax: inverse-scale-space (ISS) instance smoothing for robust image classifiers, in JAX."""

from iss_jax._src.adversarial_training import adversarial_examples as adversarial_examples
from iss_jax._src.adversarial_training import pgd_at_loss as pgd_at_loss
from iss_jax._src.adversarial_training import trades_loss as trades_loss
from iss_jax._src.attacks import cross_entropy as cross_entropy
from iss_jax._src.attacks import eot as eot
from iss_jax._src.attacks import fgsm as fgsm
from iss_jax._src.attacks import pgd as pgd
from iss_jax._src.attacks import pgd_maximize as pgd_maximize
from iss_jax._src.components import connected_components as connected_components
from iss_jax._src.corruptions import AVAILABLE_CORRUPTIONS as AVAILABLE_CORRUPTIONS
from iss_jax._src.corruptions import CORRUPTIONS as CORRUPTIONS
from iss_jax._src.corruptions import corrupt as corrupt
from iss_jax._src.corruptions import load_cifar10c as load_cifar10c
from iss_jax._src.corruptions import load_tfds_cifar10c as load_tfds_cifar10c
from iss_jax._src.lbi import LBIParams as LBIParams
from iss_jax._src.lbi import LBIState as LBIState
from iss_jax._src.lbi import hessian_norm as hessian_norm
from iss_jax._src.lbi import init as lbi_init
from iss_jax._src.lbi import make_params as lbi_params
from iss_jax._src.lbi import run as lbi_run
from iss_jax._src.lbi import step as lbi_step
from iss_jax._src.lowpass import gaussian_lowpass as gaussian_lowpass
from iss_jax._src.projection import component_mean as component_mean
from iss_jax._src.projection import project as project
from iss_jax._src.regularizers import smooth_kernel_penalty as smooth_kernel_penalty
from iss_jax._src.smooth import SmoothInfo as SmoothInfo
from iss_jax._src.smooth import smooth as smooth
from iss_jax._src.smooth import smooth_path as smooth_path
from iss_jax._src.splic import complete_matrix as splic_complete
from iss_jax._src.splic import splic as splic
from iss_jax._src.tv import select_tv_weight as select_tv_weight
from iss_jax._src.tv import tv_denoise as tv_denoise

__version__ = "0.1.0"

__all__ = (
    "AVAILABLE_CORRUPTIONS",
    "CORRUPTIONS",
    "LBIParams",
    "LBIState",
    "SmoothInfo",
    "adversarial_examples",
    "component_mean",
    "connected_components",
    "corrupt",
    "cross_entropy",
    "eot",
    "fgsm",
    "gaussian_lowpass",
    "hessian_norm",
    "lbi_init",
    "lbi_params",
    "lbi_run",
    "lbi_step",
    "load_cifar10c",
    "load_tfds_cifar10c",
    "pgd",
    "pgd_at_loss",
    "pgd_maximize",
    "project",
    "select_tv_weight",
    "smooth",
    "smooth_kernel_penalty",
    "smooth_path",
    "splic",
    "splic_complete",
    "trades_loss",
    "tv_denoise",
)
