"""Training configs in the flax-examples manner: ``<procedure>.get_config(preset)`` returns a ``ConfigDict``.

``default.py`` holds every field with the paper's defaults and the presets (quick / cpu / paper); each
procedure's file holds its command, expected runtime and accuracy. The library (``iss_jax.training``)
reads a config and never imports these files.

Examples:
  >>> from train.configs import fixed
  >>> cfg = fixed.get_config("quick")
  >>> cfg.dataset, cfg.model, cfg.sparsity
  ('cifar10_sample', 'resnet_small', 0.6)
"""
