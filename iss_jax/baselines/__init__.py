"""``iss_jax.baselines``: the competing methods, each usable alone and as a defense of the one protocol.

Test-time preprocessings (SPLIC, ME-Net, TV denoising, Gaussian low-pass), the layers trained into a
model (the TV layer, PNI weight noise; ``iss_jax.training.DefendedModel`` builds them in), the
smooth-kernel regulariser and the adversarial-training losses (PGD-AT, TRADES). :func:`make_defense` names
every test-time defense, ISS smoothing included (``"smooth@0.6"``, ``"tv@0.08"``, ``"lowpass@1"``,
``"splic@8"``, ``"menet@0.5"``, ``"none"``).
"""

from iss_jax.baselines._adversarial_training import adversarial_examples as adversarial_examples
from iss_jax.baselines._adversarial_training import pgd_at_loss as pgd_at_loss
from iss_jax.baselines._adversarial_training import trades_loss as trades_loss
from iss_jax.baselines._catalogue import DEFENSE_SPECS as DEFENSE_SPECS
from iss_jax.baselines._catalogue import lowpass_defense as lowpass_defense
from iss_jax.baselines._catalogue import make_defense as make_defense
from iss_jax.baselines._catalogue import menet_defense as menet_defense
from iss_jax.baselines._catalogue import splic_defense as splic_defense
from iss_jax.baselines._catalogue import tv_defense as tv_defense
from iss_jax.baselines._lowpass import gaussian_lowpass as gaussian_lowpass
from iss_jax.baselines._menet import menet as menet
from iss_jax.baselines._menet import soft_impute as soft_impute
from iss_jax.baselines._menet import usvt as usvt
from iss_jax.baselines._pni import PNI_KEY as PNI_KEY
from iss_jax.baselines._pni import pni_init as pni_init
from iss_jax.baselines._pni import pni_perturb as pni_perturb
from iss_jax.baselines._pni import pni_scales as pni_scales
from iss_jax.baselines._regularizers import smooth_kernel_penalty as smooth_kernel_penalty
from iss_jax.baselines._splic import complete_matrix as splic_complete
from iss_jax.baselines._splic import splic as splic
from iss_jax.baselines._tv import select_tv_weight as select_tv_weight
from iss_jax.baselines._tv import tv_denoise as tv_denoise
from iss_jax.baselines._tvlayer import DEFAULT_LAYER_ITERS as DEFAULT_LAYER_ITERS
from iss_jax.baselines._tvlayer import tv_layer as tv_layer
from iss_jax.baselines._tvlayer import tv_layer_theta as tv_layer_theta
from iss_jax.baselines._tvlayer import tv_layer_weight as tv_layer_weight

__all__ = (
    "DEFAULT_LAYER_ITERS",
    "DEFENSE_SPECS",
    "PNI_KEY",
    "adversarial_examples",
    "gaussian_lowpass",
    "lowpass_defense",
    "make_defense",
    "menet",
    "menet_defense",
    "pgd_at_loss",
    "pni_init",
    "pni_perturb",
    "pni_scales",
    "select_tv_weight",
    "smooth_kernel_penalty",
    "soft_impute",
    "splic",
    "splic_complete",
    "splic_defense",
    "trades_loss",
    "tv_defense",
    "tv_denoise",
    "tv_layer",
    "tv_layer_theta",
    "tv_layer_weight",
    "usvt",
)
