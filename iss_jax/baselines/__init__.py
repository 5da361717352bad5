"""``iss_jax.baselines``: the competing methods, each usable alone and as a defense of the one protocol.

Test-time preprocessings (SPLIC, TV denoising, Gaussian low-pass), the smooth-kernel regulariser and the
adversarial-training losses (PGD-AT, TRADES). :func:`make_defense` names every defense, ISS smoothing
included (``"smooth@0.6"``, ``"tv@0.08"``, ``"lowpass@1"``, ``"splic@8"``, ``"none"``).
"""

from iss_jax.baselines._adversarial_training import adversarial_examples as adversarial_examples
from iss_jax.baselines._adversarial_training import pgd_at_loss as pgd_at_loss
from iss_jax.baselines._adversarial_training import trades_loss as trades_loss
from iss_jax.baselines._catalogue import DEFENSE_SPECS as DEFENSE_SPECS
from iss_jax.baselines._catalogue import lowpass_defense as lowpass_defense
from iss_jax.baselines._catalogue import make_defense as make_defense
from iss_jax.baselines._catalogue import splic_defense as splic_defense
from iss_jax.baselines._catalogue import tv_defense as tv_defense
from iss_jax.baselines._lowpass import gaussian_lowpass as gaussian_lowpass
from iss_jax.baselines._regularizers import smooth_kernel_penalty as smooth_kernel_penalty
from iss_jax.baselines._splic import complete_matrix as splic_complete
from iss_jax.baselines._splic import splic as splic
from iss_jax.baselines._tv import select_tv_weight as select_tv_weight
from iss_jax.baselines._tv import tv_denoise as tv_denoise

__all__ = (
    "DEFENSE_SPECS",
    "adversarial_examples",
    "gaussian_lowpass",
    "lowpass_defense",
    "make_defense",
    "pgd_at_loss",
    "select_tv_weight",
    "smooth_kernel_penalty",
    "splic",
    "splic_complete",
    "splic_defense",
    "trades_loss",
    "tv_defense",
    "tv_denoise",
)
