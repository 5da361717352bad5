"""Test configuration: strict rank promotion, float32 by default, the NumPy oracle importable."""

import os
import sys

import jax

jax.config.update("jax_numpy_rank_promotion", "raise")
sys.path.insert(0, os.path.dirname(__file__))
