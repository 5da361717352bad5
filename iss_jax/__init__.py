"""iss-jax: inverse-scale-space (ISS) instance smoothing for robust image classifiers, in JAX.

The core needs only jax and numpy: ``smooth`` / ``smooth_path`` (Split LBI stopped at a target edge
sparsity, then projected, paper Sec. 3.1), its solver pieces and the readable definition they are tested
against. Four rooms sit on top of it, each a public namespace of its own:

* ``iss_jax.robustness``: attacks, the defense protocol, the evaluation runner and the evaluations.
* ``iss_jax.analysis``: what a trained model has learned: LRP, Grad-CAM, activation maximisation, t-SNE.
* ``iss_jax.baselines``: the competing methods (SPLIC, TV, low-pass, smooth kernels, PGD-AT / TRADES).
* ``iss_jax.training``: models, data, the smoothing cache, checkpoints, ``train_and_evaluate``; needs the
  ``[train]`` extra (``pip install "iss-jax[train]"``).

``import iss_jax`` loads none of them; ``iss_jax.robustness`` (etc.) imports the room on first use.
"""

import importlib as _importlib

from iss_jax._src.bpda import straight_through as straight_through
from iss_jax._src.checks import as_float_images as as_float_images
from iss_jax._src.components import connected_components as connected_components
from iss_jax._src.cpu_kernel import KernelUnavailableError as KernelUnavailableError
from iss_jax._src.cpu_kernel import available as cpu_kernel_available
from iss_jax._src.cpu_kernel import build as build_cpu_kernel
from iss_jax._src.definition import smooth_reference as smooth_reference
from iss_jax._src.io import atomic_write as atomic_write
from iss_jax._src.lbi import DEFAULT_MAXITER as DEFAULT_MAXITER
from iss_jax._src.lbi import DEFAULT_STEP_FACTOR as DEFAULT_STEP_FACTOR
from iss_jax._src.lbi import LBIParams as LBIParams
from iss_jax._src.lbi import LBIState as LBIState
from iss_jax._src.lbi import default_maxiter as default_maxiter
from iss_jax._src.lbi import hessian_norm as hessian_norm
from iss_jax._src.lbi import init as lbi_init
from iss_jax._src.lbi import make_params as lbi_params
from iss_jax._src.lbi import run as lbi_run
from iss_jax._src.lbi import step as lbi_step
from iss_jax._src.lbi import support as lbi_support
from iss_jax._src.lbi import tv_grad as tv_grad
from iss_jax._src.lbi import tv_grad_transpose as tv_grad_transpose
from iss_jax._src.metrics import psnr as psnr
from iss_jax._src.projection import component_mean as component_mean
from iss_jax._src.projection import project as project
from iss_jax._src.selection import SparsitySelection as SparsitySelection
from iss_jax._src.selection import select_sparsity as select_sparsity
from iss_jax._src.smooth import SmoothInfo as SmoothInfo
from iss_jax._src.smooth import smooth as smooth
from iss_jax._src.smooth import smooth_path as smooth_path

__version__ = "0.2.0"

__all__ = (
    "DEFAULT_MAXITER",
    "DEFAULT_STEP_FACTOR",
    "KernelUnavailableError",
    "LBIParams",
    "LBIState",
    "SmoothInfo",
    "SparsitySelection",
    "as_float_images",
    "atomic_write",
    "build_cpu_kernel",
    "component_mean",
    "connected_components",
    "cpu_kernel_available",
    "default_maxiter",
    "hessian_norm",
    "lbi_init",
    "lbi_params",
    "lbi_run",
    "lbi_step",
    "lbi_support",
    "project",
    "psnr",
    "select_sparsity",
    "smooth",
    "smooth_path",
    "smooth_reference",
    "straight_through",
    "tv_grad",
    "tv_grad_transpose",
)

_ROOMS = ("training", "robustness", "baselines", "analysis")

# Names that lived in the flat namespace before version 0.2, and the room that holds them now.
_MOVED = {
    **dict.fromkeys(("ResNet", "TrainState", "DatasetNotFoundError", "count_params", "create_model",
                     "load_classifier", "load_dataset", "load_variables", "resnet18", "resnet34",
                     "resnet50", "resnet_small", "smooth_dataset", "sparsity_schedule",
                     "train_and_evaluate"), "training"),
    **dict.fromkeys(("AVAILABLE_CORRUPTIONS", "CORRUPTIONS", "PAPER_CORRUPTIONS", "adversarial_sanity_checks",
                     "centred_spectrum", "corrupt", "cross_entropy", "device_description", "eot",
                     "eot_pgd", "evaluate_accuracy", "evaluate_adversarial", "evaluate_corruptions",
                     "evaluate_defense", "evaluate_denoise", "evaluate_frequency",
                     "evaluate_low_resolution", "fgsm", "first_conv_kernel", "fourier_difference",
                     "frequency_split", "high_frequency_energy", "kernel_spectra", "kernel_tv",
                     "load_cifar10c", "load_tfds_cifar10c", "low_resolution",
                     "markdown_table", "nearest_upsample", "nonzero_edge_fraction", "pgd",
                     "pgd_maximize", "radial_mask", "write_report"), "robustness"),
    **dict.fromkeys(("adversarial_examples", "gaussian_lowpass", "make_defense", "pgd_at_loss",
                     "select_tv_weight",
                     "smooth_kernel_penalty", "splic", "splic_complete", "trades_loss", "tv_denoise"),
                    "baselines"),
    "grad_cam": "analysis",
}


def __getattr__(name: str):
  if name in _ROOMS:
    return _importlib.import_module(f"iss_jax.{name}")
  if name in _MOVED:
    raise AttributeError(f"iss_jax.{name} moved to iss_jax.{_MOVED[name]}.{name} in version 0.2; "
                         f"use `from iss_jax.{_MOVED[name]} import {name}`.")
  raise AttributeError(f"module 'iss_jax' has no attribute {name!r}.")


def __dir__():
  return sorted(__all__ + _ROOMS)
