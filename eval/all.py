"""Runs every evaluation for one checkpoint: ``python -m eval.all --workdir=... [--smooth_sparsity=0.6]``.

Accepts the flags of every evaluation (see ``python -m eval.<name> --help``); ``--only`` / ``--skip`` pick
a subset. A failing evaluation is reported and the others still run; the exit status is non-zero then.
"""

from __future__ import annotations

import sys
import traceback

from absl import flags

import cli
from eval import _common, adversarial, corruptions, denoise, frequency, kernels, low_resolution, saliency

MODULES = {"adversarial": adversarial, "corruptions": corruptions, "low_resolution": low_resolution,
           "frequency": frequency, "denoise": denoise, "kernels": kernels, "saliency": saliency}


def main(argv=None):
  flag_values = flags.FlagValues()
  _common.define_flags(flag_values)
  cli.define("str_list", "only", None, "run only these evaluations, comma-separated: " + ", ".join(MODULES),
             flag_values)
  cli.define("str_list", "skip", "", "skip these evaluations, comma-separated", flag_values)
  for m in MODULES.values():
    m.define_flags(flag_values)
  args = cli.parse(flag_values, argv, __doc__)
  names = [n for n in (args.only or MODULES) if n not in args.skip]
  unknown = [n for n in names + args.skip if n not in MODULES]
  if unknown:
    cli.fail(f"--only/--skip take names among {', '.join(MODULES)}; got {', '.join(unknown)}.")
  with cli.user_errors():
    _common.prepare(args)
    data = _common.load_data(args)
    apply_fn = _common.load_model(args)[0] if set(names) - {"kernels", "denoise", "saliency"} else None
  failed, results = [], []
  for n in names:
    print(f"=== eval.{n} ===", flush=True)
    try:
      results.append(MODULES[n].run(args, apply_fn=apply_fn, data=data))
    except Exception:  # noqa: BLE001 - keep going, report at the end
      traceback.print_exc()
      failed.append(n)
  if failed:
    print(f"FAILED: {failed}", file=sys.stderr)
    sys.exit(1)
  print(f"all evaluations written to {_common.out_dir(args)}")
  _common.exit_on_violations(args, results)


if __name__ == "__main__":
  main()
