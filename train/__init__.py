"""Thin ``python -m train.<procedure>`` entry points over :func:`iss_jax.training.train_and_evaluate`."""
