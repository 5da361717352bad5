"""iss-jax: inverse-scale-space (ISS) instance smoothing for robust image classifiers, in JAX."""

from iss_jax._src.adversarial_training import adversarial_examples as adversarial_examples
from iss_jax._src.adversarial_training import pgd_at_loss as pgd_at_loss
from iss_jax._src.adversarial_training import trades_loss as trades_loss
from iss_jax._src.attacks import cross_entropy as cross_entropy
from iss_jax._src.attacks import eot as eot
from iss_jax._src.attacks import fgsm as fgsm
from iss_jax._src.attacks import pgd as pgd
from iss_jax._src.attacks import pgd_maximize as pgd_maximize
from iss_jax._src.checkpoint import load_classifier as load_classifier
from iss_jax._src.checkpoint import load_variables as load_variables
from iss_jax._src.components import connected_components as connected_components
from iss_jax._src.configs import training_config as training_config
from iss_jax._src.corruptions import AVAILABLE_CORRUPTIONS as AVAILABLE_CORRUPTIONS
from iss_jax._src.corruptions import CORRUPTIONS as CORRUPTIONS
from iss_jax._src.corruptions import PAPER_CORRUPTIONS as PAPER_CORRUPTIONS
from iss_jax._src.corruptions import corrupt as corrupt
from iss_jax._src.corruptions import load_cifar10c as load_cifar10c
from iss_jax._src.corruptions import load_tfds_cifar10c as load_tfds_cifar10c
from iss_jax._src.cpu_kernel import KernelUnavailableError as KernelUnavailableError
from iss_jax._src.data import DatasetNotFoundError as DatasetNotFoundError
from iss_jax._src.data import load_dataset as load_dataset
from iss_jax._src.defenses import eot_pgd as eot_pgd
from iss_jax._src.defenses import evaluate_defense as evaluate_defense
from iss_jax._src.defenses import make_defense as make_defense
from iss_jax._src.evaluation import adversarial_sanity_checks as adversarial_sanity_checks
from iss_jax._src.evaluation import evaluate_accuracy as evaluate_accuracy
from iss_jax._src.evaluation import evaluate_adversarial as evaluate_adversarial
from iss_jax._src.evaluation import evaluate_corruptions as evaluate_corruptions
from iss_jax._src.evaluation import evaluate_denoise as evaluate_denoise
from iss_jax._src.evaluation import evaluate_low_resolution as evaluate_low_resolution
from iss_jax._src.evaluation import low_resolution as low_resolution
from iss_jax._src.evaluation import nearest_upsample as nearest_upsample
from iss_jax._src.evaluation import nonzero_edge_fraction as nonzero_edge_fraction
from iss_jax._src.frequency import centred_spectrum as centred_spectrum
from iss_jax._src.frequency import evaluate_frequency as evaluate_frequency
from iss_jax._src.frequency import first_conv_kernel as first_conv_kernel
from iss_jax._src.frequency import fourier_difference as fourier_difference
from iss_jax._src.frequency import frequency_split as frequency_split
from iss_jax._src.frequency import high_frequency_energy as high_frequency_energy
from iss_jax._src.frequency import kernel_spectra as kernel_spectra
from iss_jax._src.frequency import kernel_tv as kernel_tv
from iss_jax._src.frequency import radial_mask as radial_mask
from iss_jax._src.lbi import DEFAULT_MAXITER as DEFAULT_MAXITER
from iss_jax._src.lbi import DEFAULT_STEP_FACTOR as DEFAULT_STEP_FACTOR
from iss_jax._src.lbi import LBIParams as LBIParams
from iss_jax._src.lbi import LBIState as LBIState
from iss_jax._src.lbi import hessian_norm as hessian_norm
from iss_jax._src.lbi import init as lbi_init
from iss_jax._src.lbi import make_params as lbi_params
from iss_jax._src.lbi import run as lbi_run
from iss_jax._src.lbi import step as lbi_step
from iss_jax._src.lbi import support as lbi_support
from iss_jax._src.lowpass import gaussian_lowpass as gaussian_lowpass
from iss_jax._src.metrics import psnr as psnr
from iss_jax._src.models import ResNet as ResNet
from iss_jax._src.models import count_params as count_params
from iss_jax._src.models import create_model as create_model
from iss_jax._src.models import resnet18 as resnet18
from iss_jax._src.models import resnet34 as resnet34
from iss_jax._src.models import resnet50 as resnet50
from iss_jax._src.models import resnet_small as resnet_small
from iss_jax._src.projection import component_mean as component_mean
from iss_jax._src.projection import project as project
from iss_jax._src.regularizers import smooth_kernel_penalty as smooth_kernel_penalty
from iss_jax._src.reporting import device_description as device_description
from iss_jax._src.reporting import markdown_table as markdown_table
from iss_jax._src.reporting import write_report as write_report
from iss_jax._src.saliency import grad_cam as grad_cam
from iss_jax._src.smooth import SmoothInfo as SmoothInfo
from iss_jax._src.smooth import smooth as smooth
from iss_jax._src.smooth import smooth_path as smooth_path
from iss_jax._src.smooth_cache import smooth_dataset as smooth_dataset
from iss_jax._src.splic import complete_matrix as splic_complete
from iss_jax._src.splic import splic as splic
from iss_jax._src.training import TrainState as TrainState
from iss_jax._src.training import sparsity_schedule as sparsity_schedule
from iss_jax._src.training import train_and_evaluate as train_and_evaluate
from iss_jax._src.tv import select_tv_weight as select_tv_weight
from iss_jax._src.tv import tv_denoise as tv_denoise

__version__ = "0.1.0"

__all__ = (
    "DEFAULT_MAXITER",
    "DEFAULT_STEP_FACTOR",
    "AVAILABLE_CORRUPTIONS",
    "CORRUPTIONS",
    "DatasetNotFoundError",
    "LBIParams",
    "LBIState",
    "PAPER_CORRUPTIONS",
    "ResNet",
    "SmoothInfo",
    "KernelUnavailableError",
    "TrainState",
    "adversarial_examples",
    "adversarial_sanity_checks",
    "centred_spectrum",
    "component_mean",
    "connected_components",
    "corrupt",
    "count_params",
    "create_model",
    "cross_entropy",
    "eot",
    "eot_pgd",
    "evaluate_accuracy",
    "evaluate_adversarial",
    "evaluate_corruptions",
    "evaluate_defense",
    "evaluate_denoise",
    "evaluate_frequency",
    "evaluate_low_resolution",
    "fgsm",
    "first_conv_kernel",
    "fourier_difference",
    "frequency_split",
    "gaussian_lowpass",
    "grad_cam",
    "hessian_norm",
    "high_frequency_energy",
    "kernel_spectra",
    "kernel_tv",
    "lbi_init",
    "lbi_params",
    "lbi_run",
    "lbi_step",
    "lbi_support",
    "load_cifar10c",
    "load_classifier",
    "load_dataset",
    "load_tfds_cifar10c",
    "load_variables",
    "low_resolution",
    "make_defense",
    "device_description",
    "markdown_table",
    "nearest_upsample",
    "nonzero_edge_fraction",
    "pgd",
    "pgd_at_loss",
    "pgd_maximize",
    "project",
    "psnr",
    "radial_mask",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet_small",
    "select_tv_weight",
    "smooth",
    "smooth_dataset",
    "smooth_kernel_penalty",
    "smooth_path",
    "sparsity_schedule",
    "splic",
    "splic_complete",
    "trades_loss",
    "train_and_evaluate",
    "training_config",
    "tv_denoise",
    "write_report",
)
