"""Runs every evaluation for one checkpoint: ``python -m eval.all --workdir=... [--smooth_sparsity=0.6]``.

Accepts the flags of every evaluation (see ``python -m eval.<name> --help``); ``--only`` / ``--skip`` pick
a subset. A failing evaluation is reported and the others still run; the exit status is non-zero then.
"""

from __future__ import annotations

import argparse
import sys
import traceback

from eval import _common, adversarial, corruptions, denoise, frequency, kernels, low_resolution, saliency

MODULES = {"adversarial": adversarial, "corruptions": corruptions, "low_resolution": low_resolution,
           "frequency": frequency, "denoise": denoise, "kernels": kernels, "saliency": saliency}


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  _common.add_common_args(parser)
  parser.add_argument("--only", type=_common.str_list, default=None)
  parser.add_argument("--skip", type=_common.str_list, default=[])
  for m in MODULES.values():
    m.add_args(parser)
  args = parser.parse_args(argv)
  names = [n for n in (args.only or MODULES) if n not in args.skip]
  unknown = [n for n in names + args.skip if n not in MODULES]
  if unknown:
    parser.error(f"--only/--skip take names among {', '.join(MODULES)}; got {', '.join(unknown)}.")
  with _common.user_errors():
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
