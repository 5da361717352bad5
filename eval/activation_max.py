"""Activation maximisation of first-layer units, penultimate units and class logits (smooth-kernel paper).

  python -m eval.activation_max --workdir=workdirs/vanilla

Each image starts from grey plus Gaussian noise and climbs ``unit(roll(x)) - l2 ||x - 0.5||^2 - tv TV(x)``
by projected Adam steps in [0, 1] with random jitter (``iss_jax.analysis.activation_maximization``). A
first-layer unit is one channel of ``--first_layer``'s output at the centre position (a linear unit whose
L2-regularised optimum is its filter; no jitter there, it would smear the filter; ``--first_position=mean``
averages over positions); a penultimate unit is one entry of the input of ``--penultimate_layer``
(the head); a class unit is a logit.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from absl import flags

import cli
import iss_jax
from eval import _common

NAME = "activation_max"


def define_flags(flag_values: flags.FlagValues) -> None:
  define = functools.partial(cli.define, flag_values=flag_values)
  define("string", "first_layer", "stem_conv", "module whose OUTPUT channels are maximised")
  define("int_list", "first_units", "0,1,2,3,4,5,6,7", "first-layer units (channels) maximised")
  define("enum", "first_position", "centre", "first-layer unit: the channel at the centre position (a "
         "linear unit: the optimum is its filter, shown as an 8x8 centre crop) or averaged over positions",
         enum_values=["centre", "mean"])
  define("string", "penultimate_layer", "head", "module whose INPUT entries are maximised")
  define("int_list", "penultimate_units", "0,1,2,3,4,5,6,7", "penultimate units maximised")
  define("int_list", "am_classes", "0,1,2,3,4,5,6,7,8,9", "logits maximised (empty: none)")
  define("integer", "am_steps", 256, "projected Adam steps")
  define("number", "am_lr", 0.05, "Adam's peak step (pixel units)")
  define("number", "am_l2", 1e-3, "weight of ||x - 0.5||^2 (summed)")
  define("number", "am_tv", 3e-3, "weight of the total variation (summed)")
  define("integer", "am_jitter", 2, "largest random shift per step (pixels)")
  define("number", "am_noise", 0.1, "std of the starting noise around grey")


def check_args(args) -> None:
  if args.am_steps < 1:
    raise ValueError(f"--am_steps must be >= 1; got {args.am_steps}.")
  for flag in ("am_lr", "am_l2", "am_tv", "am_jitter", "am_noise"):
    if getattr(args, flag) < 0:
      raise ValueError(f"--{flag} must be >= 0; got {getattr(args, flag)}.")
  if not (args.first_units or args.penultimate_units or args.am_classes):
    raise ValueError("--first_units, --penultimate_units and --am_classes are all empty: nothing to show.")


def unit_fns(model, variables, args):
  """``{group: (layer description, unit_fn(units) -> fn(x) -> (N,))}`` of the three unit groups."""

  def channel(layer, which, centre=False):
    def make(units):
      def fn(x):
        a = iss_jax.analysis.module_activation(model, variables, x, layer, which=which)
        if centre and a.ndim == 4:
          a = a[:, a.shape[1] // 2, a.shape[2] // 2]
        a = a.reshape(a.shape[0], -1, a.shape[-1]).mean(axis=1)  # mean over positions: (N, channels)
        return jnp.take_along_axis(a, units[:, None], 1)[:, 0]
      return fn
    return make

  def logit(units):
    return lambda x: jnp.take_along_axis(model.apply(variables, x, train=False), units[:, None], 1)[:, 0]

  centre = args.first_position == "centre"
  return {"first layer": (f"output of `{args.first_layer}`, "
                          + ("centre position" if centre else "mean over positions"),
                          channel(args.first_layer, "output", centre), args.first_units),
          "penultimate": (f"input of `{args.penultimate_layer}`", channel(args.penultimate_layer, "input"),
                          args.penultimate_units),
          "class logit": ("logits", logit, args.am_classes)}


def run(args, data=None, model_and_variables=None) -> dict:
  check_args(args)
  x, _ = data if data is not None else _common.load_data(args)
  model, variables = model_and_variables or iss_jax.training.load_variables(args.workdir)[:2]
  shape = x.shape[1:]
  key = jax.random.key(args.seed)
  res = {"steps": args.am_steps, "learning_rate": args.am_lr, "l2": args.am_l2, "tv": args.am_tv,
         "jitter": args.am_jitter, "noise": args.am_noise, "groups": {}}
  rows, panels = [], []
  for g, (group, (where, make, units)) in enumerate(unit_fns(model, variables, args).items()):
    if not units:
      continue
    units_arr = jnp.asarray(units, jnp.int32)
    k0, k1 = jax.random.split(jax.random.fold_in(key, g))
    x0 = jnp.clip(0.5 + args.am_noise * jax.random.normal(k0, (len(units), *shape)), 0, 1)
    try:
      out = iss_jax.analysis.activation_maximization(
          make(units_arr), x0, steps=args.am_steps, learning_rate=args.am_lr, l2=args.am_l2, tv=args.am_tv,
          jitter=0 if group == "first layer" and args.first_position == "centre" else args.am_jitter, key=k1)
    except IndexError as e:  # take_along_axis clamps out of range indices under jit; eager raises
      raise ValueError(f"units of the {group} group are out of range: {units}.") from e
    res["groups"][group] = {"where": where, "units": list(units), "initial": out.initial.tolist(),
                            "final": out.final.tolist(), "images": out.images.tolist()}
    for u, a0, a1 in zip(units, out.initial, out.final, strict=True):
      rows.append([group, u, f"{a0:.3f}", f"{a1:.3f}"])
    panels.append((group, where, units, out))
  md = [_common.header(args, "Activation maximisation", 0).replace("- data:", "- image size from:"),
        f"Objective: unit(roll(x, s)) - {args.am_l2:g} ||x - 0.5||^2 - {args.am_tv:g} TV(x), s a random "
        f"shift in [-{args.am_jitter}, {args.am_jitter}]^2 per step; {args.am_steps} projected Adam steps "
        f"(peak {args.am_lr:g}, cosine decay) in [0, 1] from grey + N(0, {args.am_noise:g}^2).\n",
        iss_jax.robustness.markdown_table(["group", "unit", "activation at start", "activation at end"],
                                          rows)]
  fig = _plot(args, panels)
  return _common.finish(args, NAME, md, res, fig)


def _plot(args, panels):
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  names = _common.class_names(args.dataset)
  ncols = max(len(p[2]) for p in panels)
  fig, axes = plt.subplots(len(panels), ncols, figsize=(1.45 * ncols + 0.8, 1.75 * len(panels) + 0.9),
                           squeeze=False)
  for r, (group, where, units, out) in enumerate(panels):
    for j in range(ncols):
      ax = axes[r, j]
      ax.set_xticks([])
      ax.set_yticks([])
      if j >= len(units):
        ax.axis("off")
        continue
      im = out.images[j]
      if group == "first layer" and args.first_position == "centre":
        h, w = im.shape[:2]
        im = im[max(h // 2 - 4, 0):h // 2 + 4, max(w // 2 - 4, 0):w // 2 + 4]
      lo, hi = float(im.min()), float(im.max())
      ax.imshow((im - lo) / max(hi - lo, 1e-12), interpolation="nearest")
      label = names(units[j]) if group == "class logit" else f"unit {units[j]}"
      ax.set_title(f"{label}\n{out.initial[j]:.2f} \u2192 {out.final[j]:.2f}", fontsize=7)
    centre = group == "first layer" and args.first_position == "centre"
    crop = "\n8x8 centre crop, no jitter" if centre else ""
    axes[r, 0].set_ylabel(f"{group}\n({where.split(',')[0]}){crop}", fontsize=7)
  fig.suptitle("Activation maximisation (each image min-max stretched for display; titles: activation "
               f"start \u2192 end)\nL2 {args.am_l2:g}, TV {args.am_tv:g}, jitter {args.am_jitter} px, "
               f"{args.am_steps} steps; {args.workdir}", fontsize=9)
  return fig


def main(argv=None):
  _common.main(__doc__, define_flags, run, argv)


if __name__ == "__main__":
  main()
