"""One spec per table of the papers that ``python -m eval.paper`` reproduces: the models it needs (a
training procedure of ``train/configs`` with the table's sparsities), its evaluation and protocol, and the
key of the paper's numbers in ``eval._paper_numbers``.

The sparsities per table are the papers' (main paper Sec. 4.1-4.4, App. B, F, H, I): fixed and finetune
at 0.8 for Tables 1, 9, 10 and Fig. 4; at 0.6 for Tables 2, 3, 7, 8, 11; iterative 0.3 -> 0.6 for the
adversarial and low-resolution tables and 0.3 -> 0.8 elsewhere, in steps of 0.1 (the paper's "0.3, 0.4,
..., 0.8"). eps of the main paper's adversarial tables is on normalised images (Sec. 4.2), i.e. the
per-channel pixel radius eps * std_c.
"""

from __future__ import annotations

import dataclasses
from typing import Any

CIFAR10_STD = (0.2470, 0.2435, 0.2616)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclasses.dataclass(frozen=True)
class Model:
  """A model a table needs: ``procedure`` is a config of ``train/configs`` (``get_config(preset)``),
  ``fields`` its overrides; ``init`` the model key whose checkpoint a finetune starts from."""

  key: str
  procedure: str
  fields: tuple[tuple[str, Any], ...] = ()
  init: str | None = None
  label: str = ""


def _fixed(s: float) -> Model:
  return Model(f"fixed_s{s:g}", "fixed", (("sparsity", s),), label=f"fixed {s:g}")


def _finetune(s: float) -> Model:
  return Model(f"finetune_s{s:g}", "finetune", (("sparsity", s),), init="vanilla", label=f"finetune {s:g}")


def _iterative(a: float, b: float) -> Model:
  levels = int(round((b - a) / 0.1)) + 1  # 0.3, 0.4, ..., b
  return Model(f"iterative_s{a:g}-{b:g}", "iterative",
               (("start_sparsity", a), ("end_sparsity", b), ("num_levels", levels)),
               label=f"iterative {a:g}->{b:g}")


VANILLA = Model("vanilla", "vanilla", label="vanilla")
TVLAYER = Model("tvlayer", "tvlayer", label="TV layer")
PNI = Model("pni", "pni", label="PNI")
PGD_AT = Model("pgd_at", "adversarial", label="PGD-AT (Madry)")
MENET = Model("menet", "menet", label="ME-Net")
SPLIC = Model("splic", "splic", label="SPLIC-Net")
# The substitute of the black-box (transfer) tables: an independent vanilla model (another seed).
SUBSTITUTE = Model("vanilla_substitute", "vanilla", (("seed", 1001),),
                   label="substitute (vanilla, seed 1001)")
SK_LAMBDAS = (0.01, 0.1, 1.0, 10.0, 100.0)
# The smooth-kernel sweep's optimiser, the same for V and every VR row (why: run_kernels' note, which
# prints these values). The paper names none; its penalty is summed over every 2-D kernel slice, each
# R close to 1 at initialisation, so it starts near lambda x 8,000 in ResNet-8.
SK_OPTIMIZER = (("optimizer", "adamw"), ("learning_rate", 1e-3))


def _sk(lam: float) -> Model:
  """The VR row at ``lam`` (``lam = 0``: its V row), both trained with ``SK_OPTIMIZER``."""
  if lam == 0:
    return Model("vanilla_adamw", "vanilla", SK_OPTIMIZER, label="vanilla (AdamW 1e-3)")
  return Model(f"vanilla_adamw_sk{lam:g}", "vanilla", SK_OPTIMIZER + (("smooth_kernel_weight", lam),),
               label=f"VR lambda={lam:g}")


@dataclasses.dataclass(frozen=True)
class Table:
  """One table of ``eval.paper``.

  Attributes:
    key: the ``--table`` value and the output name (``results/<key>.md``).
    paper: the key in ``eval._paper_numbers.TABLES`` (None: the paper prints no table, e.g. a figure).
    kind: the evaluation: corruptions | adversarial | frequency | clean | denoise | timing | transfer |
      whitebox | graybox | kernels | curves | lowres.
    rows: ``(paper row label, model)``: the paper's row (its training label) and the model we train for it.
    protocol: the table's settings (eps grid and its space, attack, radii, sizes, test preprocessing).
    dataset: ``cifar10`` (the cpu scale's real subset) or a preset needing ``--data_dir``.
    unavailable: why the table cannot be produced here (one line), or None.
  """

  key: str
  paper: str | None
  title: str
  kind: str
  rows: tuple[tuple[str, Model], ...] = ()
  protocol: dict = dataclasses.field(default_factory=dict)
  dataset: str = "cifar10"
  unavailable: str | None = None

  @property
  def models(self) -> list[Model]:
    return [m for _, m in self.rows]


_ADV_ROWS = (("Vanilla Model", VANILLA), ("PNI", PNI), ("TV Layer", TVLAYER),
             ("Ours iterative", _iterative(0.3, 0.6)), ("Ours fix", _fixed(0.6)),
             ("Finetune", _finetune(0.6)))
_MINI_ADV_ROWS = (("Vanilla Model", VANILLA), ("Ours iterative", _iterative(0.3, 0.6)),
                  ("Ours fix", _fixed(0.6)), ("Finetune", _finetune(0.6)))
_FREQ_ROWS = (("Vanilla", VANILLA), ("Finetune", _finetune(0.8)), ("Fixed", _fixed(0.8)),
              ("Iterative", _iterative(0.3, 0.8)))
_MINI = ("miniImageNet is not in ../shared/data: pass --data_dir=DIR holding miniimagenet/ (class "
         "folders; see iss_jax.training.load_dataset) to run it")


def _adversarial(number: int, attack: str, eps: tuple[int, ...], mini: bool = False) -> Table:
  """Tables 2/3 (FGSM) and 7/8 (PGD): eps on normalised images, with and without test-time smoothing."""
  name = "miniImageNet" if mini else "CIFAR-10"
  return Table(f"table{number}", f"main/table{number}",
               f"{attack.upper()} on {name}, eps on normalised images (Table {number})", "adversarial",
               _MINI_ADV_ROWS if mini else _ADV_ROWS,
               {"attack": attack, "eps": eps, "eps_space": "normalized",
                "std": IMAGENET_STD if mini else CIFAR10_STD,
                "test_preprocessing": {"None": "none", "Sparsity 0.6": "smooth@0.6"}},
               **({"dataset": "miniimagenet", "unavailable": _MINI} if mini else {}))


TABLES: dict[str, Table] = {t.key: t for t in (
    Table("table1", "main/table1", "CIFAR-10-C with and without test-time smoothing (Table 1)", "corruptions",
          (("Vanilla Model", VANILLA), ("TV Layer", TVLAYER), ("Ours (Fixed Training)", _fixed(0.8)),
           ("Ours (Iterative Training)", _iterative(0.3, 0.8)), ("Ours (Finetune)", _finetune(0.8))),
          {"columns": {"Gaussian": "gaussian_noise", "Shot": "shot_noise", "Impulse": "impulse_noise",
                       "Glass": "glass_blur", "Motion": "motion_blur", "Brightness": "brightness",
                       "Elastic": "elastic_transform"},
           "test_preprocessing": {"None": "none", "Sparsity 0.6": "smooth@0.6"}}),
    _adversarial(2, "fgsm", (8, 16, 24, 32)),
    _adversarial(3, "fgsm", (2, 4, 6, 8), mini=True),
    Table("table4", "main/table4", "Clean accuracy by training sparsity, mean +- std over seeds (Table 4)",
          "clean", tuple((f"{s:g}", _fixed(s)) for s in (0.4, 0.5, 0.6, 0.7, 0.8, 0.9))
          + (("1.0 (Vanilla)", VANILLA), ("Iterative", _iterative(0.3, 0.8)))),
    Table("table5", "main/table5", "Clean accuracy by training sparsity on ImageNet-100 (Table 5)", "clean",
          tuple((f"{s:g}", _fixed(s)) for s in (0.4, 0.6, 0.8)) + (("1.0 (Vanilla)", VANILLA),
                                                                   ("Iterative", _iterative(0.3, 0.8))),
          dataset="imagenet100",
          unavailable="ImageNet-100 is not in ../shared/data: pass --data_dir=DIR with train/ and val/ class "
                      "folders (or TFDS imagenet2012) and --scale=paper (ResNet-50 preset imagenet100)"),
    Table("table6", "main/table6", "Projection time: SVD, LSQR and the graph algorithm (Table 6)", "timing",
          protocol={"size": 84, "iterations": 15000, "sparsity": 0.6}),
    _adversarial(7, "pgd", (8, 16, 24, 32)),
    _adversarial(8, "pgd", (2, 4, 6, 8), mini=True),
    Table("table9", "main/table9",
          "High/low-frequency accuracy and low-frequency fraction, CIFAR-10 (Table 9)", "frequency",
          _FREQ_ROWS, {"radii": (4, 6, 8, 10)}),
    Table("table10", "main/table10", "High/low-frequency accuracy, miniImageNet (Table 10)", "frequency",
          _FREQ_ROWS, {"radii": (10, 20, 30, 40)}, dataset="miniimagenet", unavailable=_MINI),
    Table("table11", "main/table11", "Low-resolution accuracy, miniImageNet (Table 11)", "lowres",
          (("Vanilla", VANILLA), ("Finetune", _finetune(0.6)), ("Iterative", _iterative(0.3, 0.6)),
           ("Fixed", _fixed(0.6))), {"sizes": (24, 34, 44, 54, 64, 74)}, dataset="miniimagenet",
          unavailable=_MINI),
    Table("table12", "main/table12", "Gaussian noise on ImageNet, pretrained ResNet-50 (Table 12)", "clean",
          unavailable="needs an ImageNet-pretrained ResNet-50 and ImageNet test images, neither downloadable "
                      "here (no weights in the package lists, no network)"),
    Table("table13", "main/table13", "PSNR of ISS vs TV denoising on ImageNet (Table 13)", "denoise",
          unavailable="needs ImageNet images (not in ../shared/data); App. K's CIFAR-10 PSNR is table appK"),
    Table("appK", "main/appK", "Mean PSNR of noisy and smoothed CIFAR-10 test images (App. K)", "denoise",
          protocol={"sigma": 0.1, "sparsity": 0.6}),
    Table("fig4", None, "Low-frequency fraction per epoch (Fig. 4, CIFAR-10)", "curves",
          _FREQ_ROWS, {"radius": 8}),
    Table("fig9", None, "Grad-CAM during iterative training 0.3 -> 0.8 (Fig. 9, App. C)", "gradcam",
          (("Iterative", _iterative(0.3, 0.8)),)),
    Table("fig10", None, "Image paths at sparsity 0.2 ... 1.0 (Fig. 10)", "paths",
          protocol={"sparsities": (0.2, 0.4, 0.6, 0.8, 1.0)}),
    Table("fig7", None, "Low-resolution accuracy during training (Fig. 7, miniImageNet)", "lowres",
          unavailable=_MINI),
    Table("splic1", "splic/table1", "SPLIC Table 1: black-box (transfer) FGSM, PGD and C&W", "transfer",
          (("Vanilla", VANILLA), ("Madry [16]", PGD_AT), ("ME-Net [31]", MENET), ("SPLIC-Net (Ours)", SPLIC)),
          {"eps": 8, "attacks": ("fgsm", "pgd", "cw-l2"), "steps": 7, "step": 2}),
    Table("splic2", "splic/table2", "SPLIC Table 2: white-box BPDA", "whitebox",
          (("Vanilla", VANILLA), ("TV Minimization [6]", VANILLA), ("ME-Net [31]", MENET),
           ("SPLIC (This Work)", SPLIC)),
          {"eps": 8, "steps": 7, "step": 2, "defenses": {"Vanilla": "none", "TV Minimization [6]": "tv@0.05",
                                                        "ME-Net [31]": "menet@0.5",
                                                        "SPLIC (This Work)": "splic@8"}}),
    Table("splic3", "splic/table3", "SPLIC Table 3: gray-box FGSM and PGD without network training",
          "graybox",
          (("ME-Net", VANILLA), ("SPLIC", VANILLA)),
          {"eps": 8, "steps": 7, "step": 2, "defenses": {"ME-Net": "menet@0.5", "SPLIC": "splic@8"},
           "missing": "USVT and Soft-Imp are not implemented here"}),
    Table("splic4", "splic/table4", "SPLIC Table 4: SRF vs SPLIC on SVHN", "graybox",
          unavailable="SVHN is not in ../shared/data and SRF (SPLIC without its TV term) is not implemented"),
    Table("smooth_kernels", "smooth_kernels/table1",
          "Smooth kernels: the lambda sweep {0.01 ... 100} on CIFAR-10 (eps = 0.1 pixels)", "kernels",
          (("V", _sk(0)),) + tuple((f"VR lambda={lam:g}", _sk(lam)) for lam in SK_LAMBDAS),
          # C&W at Foolbox's defaults, which the paper says it uses (confidence 0, initial const 0.01,
          # 5 bisection steps of 1,000 Adam steps at 0.005).
          {"eps": 0.1, "attacks": ("fgsm", "pgd", "deepfool", "cw-l2"),
           "cw_l2": {"kappa": 0.0, "c_init": 0.01}}),
)}

# The order of --table=all: what most tables share first (vanilla, fixed, iterative, finetune), the
# expensive adversarially trained and preprocessed models last.
ORDER = ("appK", "table6", "fig10", "table9", "fig4", "fig9",
         "table1", "table2", "table7", "table4", "smooth_kernels", "splic3", "splic2", "splic1",
         "table3", "table5", "table8", "table10", "table11", "table12", "table13",
         "fig7", "splic4")
assert sorted(ORDER) == sorted(TABLES), "ORDER must list every table once"
