"""Thin ``python -m train.<procedure>`` entry points over :func:`iss_jax.train_and_evaluate`."""
