"""Loading trained classifiers from a training workdir (orbax checkpoints + ``config.json``)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import orbax.checkpoint as ocp

from iss_jax import robustness
from iss_jax.training._config_schema import with_absent_fields
from iss_jax.training._defended_models import build_model
from iss_jax.training._models import ResNet


def workdir_config(workdir: str | os.PathLike) -> ml_collections.ConfigDict:
  """The config of a training workdir: the ``config.json`` :func:`train_and_evaluate` writes first, with
  each field it lacks (a workdir made before the field existed) set to what its absence meant
  (``CONFIG_SCHEMA[field].absent_means``).

  Raises:
    FileNotFoundError: ``workdir`` holds no ``config.json``: it is not a training workdir.
  """
  path = Path(workdir) / "config.json"
  if not path.is_file():
    raise FileNotFoundError(f"{workdir} is not a training workdir: it holds no config.json.")
  return ml_collections.ConfigDict(with_absent_fields(json.loads(path.read_text())))


def load_variables(workdir: str | os.PathLike, step: int | None = None
                   ) -> tuple[ResNet, dict, ml_collections.ConfigDict]:
  """The model, its variables and its training config from a workdir of :func:`train_and_evaluate`.

  Args:
    workdir: the training workdir (holds ``config.json`` and ``checkpoints/``).
    step: the checkpoint (epoch) to load; default the latest.

  Returns:
    ``(model, variables, config)``: ``variables = {"params": ..., "batch_stats": ...}``; use
    ``model.apply(variables, x, train=False)`` on float NHWC images in ``[0, 1]``. A field the stored
    config lacks (a workdir made before the field existed) is set to what its absence meant
    (``iss_jax.training.CONFIG_SCHEMA[field].absent_means``).

  Raises:
    FileNotFoundError: no ``config.json`` or no checkpoint in ``workdir``.

  Examples:
    >>> import iss_jax  # doctest: +SKIP
    >>> model, variables, config = iss_jax.training.load_variables("workdirs/fixed_s0.6")  # doctest: +SKIP
  """
  workdir = Path(workdir)
  config = workdir_config(workdir)
  ckpt_dir = (workdir / "checkpoints").absolute()
  with ocp.CheckpointManager(ckpt_dir) as manager:
    step = manager.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"no checkpoint in {ckpt_dir}; the run has not finished an epoch yet.")
    restored = manager.restore(step, args=ocp.args.StandardRestore())
  variables = {"params": restored["params"], "batch_stats": restored.get("batch_stats") or {}}  # ViT: {}
  variables = jax.tree_util.tree_map(jnp.asarray, variables)
  model = build_model(config, _head_size(variables))
  return model, variables, config


def _head_size(variables) -> int:
  return int(variables["params"]["head"]["bias"].shape[0])


def load_classifier(workdir: str | os.PathLike, step: int | None = None
                    ) -> tuple[Callable[[jax.Array], jax.Array], ml_collections.ConfigDict]:
  """An inference-mode classifier from a training workdir.

  Args:
    workdir: the training workdir.
    step: the checkpoint (epoch) to load; default the latest.

  Returns:
    ``(apply_fn, config)``: ``apply_fn(x)`` maps float ``(N, H, W, C)`` images in ``[0, 1]`` to logits
    ``(N, num_classes)`` with the BatchNorm running statistics; jittable and differentiable w.r.t. ``x``.
    A model trained with PNI is random: ``apply_fn`` is then an ``iss_jax.robustness.RandomClassifier``,
    ``apply_fn(x, key)``, which every evaluation attacks with EOT.

  Examples:
    >>> import iss_jax  # doctest: +SKIP
    >>> apply_fn, config = iss_jax.training.load_classifier("workdirs/vanilla")  # doctest: +SKIP
    >>> logits = apply_fn(x)  # doctest: +SKIP
  """
  model, variables, config = load_variables(workdir, step)
  if getattr(model, "random", False):  # PNI: fresh weight noise at every call, kept at test time
    return robustness.RandomClassifier(
        lambda x, key: model.apply(variables, x, train=False, rngs={"noise": key})), config

  def apply_fn(x):
    return model.apply(variables, x, train=False)

  return apply_fn, config
