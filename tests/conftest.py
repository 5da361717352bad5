"""Test configuration: strict rank promotion, float32 by default, the NumPy oracle and train/ importable."""

import os
import sys

import jax

jax.config.update("jax_numpy_rank_promotion", "raise")
sys.path.insert(0, os.path.dirname(__file__))
# The repository root, so that `pytest` (not only `python -m pytest`) imports train.configs and train._main.
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
