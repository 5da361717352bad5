"""``iss_jax.robustness``: attacks, the defense protocol, the one evaluation runner and the evaluations.

A :class:`Defense` is a named test-time preprocessing with the gradient an adaptive attacker gets through
it and whether it is random; :func:`smoothing_defense` makes ISS smoothing one, and
``iss_jax.baselines.make_defense`` names every defense (competitors included). Each evaluation takes a
classifier ``apply_fn(x) -> logits`` and defenses, and runs through :class:`Runner` (pass one to share
its compiled functions and clean predictions across evaluations). The attacks they run are the entries
of the table :data:`ATTACKS` (an :class:`Attack` each).
"""

from iss_jax.robustness._adversarial import adversarial_sanity_checks as adversarial_sanity_checks
from iss_jax.robustness._adversarial import evaluate_adversarial as evaluate_adversarial
from iss_jax.robustness._apgd import APGDState as APGDState
from iss_jax.robustness._apgd import apgd as apgd
from iss_jax.robustness._apgd import apgd_checkpoints as apgd_checkpoints
from iss_jax.robustness._apgd import dlr_loss as dlr_loss
from iss_jax.robustness._apgd import dlr_loss_targeted as dlr_loss_targeted
from iss_jax.robustness._apgd import eot_apgd as eot_apgd
from iss_jax.robustness._attack_table import ATTACKS as ATTACKS
from iss_jax.robustness._attack_table import Attack as Attack
from iss_jax.robustness._attack_table import AttackSettings as AttackSettings
from iss_jax.robustness._attacks import CIFAR10_STD as CIFAR10_STD
from iss_jax.robustness._attacks import EPS_SPACES as EPS_SPACES
from iss_jax.robustness._attacks import cross_entropy as cross_entropy
from iss_jax.robustness._attacks import eot as eot
from iss_jax.robustness._attacks import eot_pgd as eot_pgd
from iss_jax.robustness._attacks import eps_radius as eps_radius
from iss_jax.robustness._attacks import fgsm as fgsm
from iss_jax.robustness._attacks import pgd as pgd
from iss_jax.robustness._attacks import pgd_maximize as pgd_maximize
from iss_jax.robustness._claims import claim_record as claim_record
from iss_jax.robustness._claims import code_version as code_version
from iss_jax.robustness._claims import read_claims as read_claims
from iss_jax.robustness._claims import write_claim as write_claim
from iss_jax.robustness._corruptions import AVAILABLE_CORRUPTIONS as AVAILABLE_CORRUPTIONS
from iss_jax.robustness._corruptions import CORRUPTIONS as CORRUPTIONS
from iss_jax.robustness._corruptions import EXTRA_CORRUPTIONS as EXTRA_CORRUPTIONS
from iss_jax.robustness._corruptions import PAPER_CORRUPTIONS as PAPER_CORRUPTIONS
from iss_jax.robustness._corruptions import corrupt as corrupt
from iss_jax.robustness._corruptions import evaluate_corruptions as evaluate_corruptions
from iss_jax.robustness._corruptions import frost_texture_dir as frost_texture_dir
from iss_jax.robustness._corruptions import load_cifar10c as load_cifar10c
from iss_jax.robustness._corruptions import load_tfds_cifar10c as load_tfds_cifar10c
from iss_jax.robustness._cw_l2 import CWL2Result as CWL2Result
from iss_jax.robustness._cw_l2 import cw_l2 as cw_l2
from iss_jax.robustness._defenses import Defense as Defense
from iss_jax.robustness._defenses import custom_defense as custom_defense
from iss_jax.robustness._defenses import no_defense as no_defense
from iss_jax.robustness._defenses import smoothing_defense as smoothing_defense
from iss_jax.robustness._denoise import evaluate_denoise as evaluate_denoise
from iss_jax.robustness._evaluate import AttackResult as AttackResult
from iss_jax.robustness._evaluate import Evaluation as Evaluation
from iss_jax.robustness._evaluate import eot_sweep as eot_sweep
from iss_jax.robustness._evaluate import evaluate as evaluate
from iss_jax.robustness._evaluation import evaluate_accuracy as evaluate_accuracy
from iss_jax.robustness._evaluation import evaluate_defense as evaluate_defense
from iss_jax.robustness._frequency import centred_spectrum as centred_spectrum
from iss_jax.robustness._frequency import evaluate_frequency as evaluate_frequency
from iss_jax.robustness._frequency import first_conv_kernel as first_conv_kernel
from iss_jax.robustness._frequency import fourier_difference as fourier_difference
from iss_jax.robustness._frequency import frequency_split as frequency_split
from iss_jax.robustness._frequency import high_frequency_energy as high_frequency_energy
from iss_jax.robustness._frequency import kernel_spectra as kernel_spectra
from iss_jax.robustness._frequency import kernel_tv as kernel_tv
from iss_jax.robustness._frequency import low_frequency_fraction as low_frequency_fraction
from iss_jax.robustness._frequency import radial_mask as radial_mask
from iss_jax.robustness._low_resolution import evaluate_low_resolution as evaluate_low_resolution
from iss_jax.robustness._low_resolution import low_resolution as low_resolution
from iss_jax.robustness._low_resolution import nearest_upsample as nearest_upsample
from iss_jax.robustness._low_resolution import nonzero_edge_fraction as nonzero_edge_fraction
from iss_jax.robustness._masking import model_checks as model_checks
from iss_jax.robustness._minimal import cw as cw
from iss_jax.robustness._minimal import cw_loss as cw_loss
from iss_jax.robustness._minimal import deepfool as deepfool
from iss_jax.robustness._minimal import eot_cw as eot_cw
from iss_jax.robustness._passes import PassCounter as PassCounter
from iss_jax.robustness._reporting import device_description as device_description
from iss_jax.robustness._reporting import markdown_table as markdown_table
from iss_jax.robustness._reporting import write_report as write_report
from iss_jax.robustness._runner import RandomClassifier as RandomClassifier
from iss_jax.robustness._runner import Runner as Runner
from iss_jax.robustness._square import SQUARE_QUERIES as SQUARE_QUERIES
from iss_jax.robustness._square import SquareInfo as SquareInfo
from iss_jax.robustness._square import eot_square as eot_square
from iss_jax.robustness._square import random_square as random_square
from iss_jax.robustness._square import square as square
from iss_jax.robustness._square import square_p_schedule as square_p_schedule
from iss_jax.robustness._stats import wilson_interval as wilson_interval

__all__ = (
    "APGDState",
    "ATTACKS",
    "AVAILABLE_CORRUPTIONS",
    "Attack",
    "AttackResult",
    "AttackSettings",
    "CIFAR10_STD",
    "CORRUPTIONS",
    "CWL2Result",
    "Defense",
    "EPS_SPACES",
    "EXTRA_CORRUPTIONS",
    "Evaluation",
    "PAPER_CORRUPTIONS",
    "PassCounter",
    "RandomClassifier",
    "Runner",
    "SQUARE_QUERIES",
    "SquareInfo",
    "adversarial_sanity_checks",
    "apgd",
    "apgd_checkpoints",
    "centred_spectrum",
    "claim_record",
    "code_version",
    "corrupt",
    "cross_entropy",
    "custom_defense",
    "cw",
    "cw_l2",
    "cw_loss",
    "deepfool",
    "device_description",
    "dlr_loss",
    "dlr_loss_targeted",
    "eot",
    "eot_apgd",
    "eot_cw",
    "eot_pgd",
    "eot_square",
    "eot_sweep",
    "eps_radius",
    "evaluate",
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
    "frost_texture_dir",
    "high_frequency_energy",
    "kernel_spectra",
    "kernel_tv",
    "load_cifar10c",
    "load_tfds_cifar10c",
    "low_frequency_fraction",
    "low_resolution",
    "markdown_table",
    "model_checks",
    "nearest_upsample",
    "no_defense",
    "nonzero_edge_fraction",
    "pgd",
    "pgd_maximize",
    "radial_mask",
    "random_square",
    "read_claims",
    "smoothing_defense",
    "square",
    "square_p_schedule",
    "wilson_interval",
    "write_claim",
    "write_report",
)

# The model analyses (LRP, t-SNE, activation maximisation, Grad-CAM) live in iss_jax.analysis.
_MOVED = ("ActivationMaxResult", "LRPResult", "TSNEResult", "activation_maximization",
          "conditional_affinities", "grad_cam", "lrp", "module_activation", "silhouette_samples",
          "silhouette_score", "squared_distances", "total_variation", "tsne")


def __getattr__(name: str):
  if name in _MOVED:
    raise AttributeError(f"iss_jax.robustness.{name} moved to iss_jax.analysis.{name}; use "
                         f"`from iss_jax.analysis import {name}`.")
  raise AttributeError(f"module 'iss_jax.robustness' has no attribute {name!r}.")
