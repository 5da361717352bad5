"""``iss_jax.analysis``: what a trained classifier has learned, read off its layers.

LRP relevance maps (:func:`lrp`, LRP-epsilon with conservation accounted for), Grad-CAM saliency
(:func:`grad_cam`), activation maximisation (:func:`activation_maximization`, any module's input or
output through :func:`module_activation`) and an exact t-SNE with the silhouette score (:func:`tsne`,
:func:`silhouette_score`). Each takes a flax.linen model and its variables (or feature vectors); flax is
imported on first use.
"""

from iss_jax.analysis._activation_max import ActivationMaxResult as ActivationMaxResult
from iss_jax.analysis._activation_max import activation_maximization as activation_maximization
from iss_jax.analysis._activation_max import module_activation as module_activation
from iss_jax.analysis._activation_max import total_variation as total_variation
from iss_jax.analysis._lrp import LRPResult as LRPResult
from iss_jax.analysis._lrp import lrp as lrp
from iss_jax.analysis._saliency import grad_cam as grad_cam
from iss_jax.analysis._tsne import TSNEResult as TSNEResult
from iss_jax.analysis._tsne import conditional_affinities as conditional_affinities
from iss_jax.analysis._tsne import silhouette_samples as silhouette_samples
from iss_jax.analysis._tsne import silhouette_score as silhouette_score
from iss_jax.analysis._tsne import squared_distances as squared_distances
from iss_jax.analysis._tsne import tsne as tsne

__all__ = (
    "ActivationMaxResult",
    "LRPResult",
    "TSNEResult",
    "activation_maximization",
    "conditional_affinities",
    "grad_cam",
    "lrp",
    "module_activation",
    "silhouette_samples",
    "silhouette_score",
    "squared_distances",
    "total_variation",
    "tsne",
)
