"""Presets for the later paper's datasets: ``--preset=cifar100``, ``miniimagenet`` or ``imagenet100``.

Each works with every procedure: ``python -m train.<vanilla|fixed|iterative|finetune|adversarial>
--preset=<dataset> --data_dir=DIR``. ``default.apply_preset`` puts the fields of ``PRESET_FIELDS`` over the
paper's defaults (``default.get_config()``: SGD 0.1, momentum 0.9, weight decay 5e-4, cosine schedule, 200
epochs, batch 128, random crop + flip); these dicts are the one place their values live. The per-procedure
configs add their own settings (``fixed``: sparsity 0.6, 0.3 on ImageNet-100 (``SPARSITY``, the later
paper's choice); ``iterative``: 0.3 -> 0.8 in 6 levels; ``finetune``: from ``--init_checkpoint``, lr / 5
and a third of the epochs; ``adversarial``: PGD-AT).

  cifar100: ``python -m train.fixed --preset=cifar100 --data_dir=DIR``
      data: DIR holds the official python folder ``cifar-100-python`` (files ``train``, ``test``; from
      ``cifar-100-python.tar.gz``), or TFDS ``cifar100`` where it can download (e.g. Colab). 50,000 train /
      10,000 test images, 100 fine labels. Model: ResNet-18, CIFAR stem (11.2M parameters), the CIFAR-10
      schedule. Expected clean accuracy (vanilla): about 76%; this is NOT a figure from the ISS papers
      (the later paper's tables are not in the text available to us): weiaicunzai/pytorch-cifar100 reports
      75.6% for ResNet-18 with this optimiser and a step schedule. Compute: 0.97 GFLOP per image forward
      (XLA's cost analysis), about 29 PFLOP for 200 epochs.
  miniimagenet: ``python -m train.fixed --preset=miniimagenet --data_dir=DIR``
      data: DIR (or DIR/miniimagenet) holds miniImageNet's 64 training classes (``train/<wnid>/*.jpg``,
      ``<wnid>/*.jpg``, Ravi & Larochelle's ``images/`` + ``train.csv``, or
      ``mini-imagenet-cache-train.pkl``); the main paper's split: 100 images of each class held out for
      testing (6,400), the other 500 for training (32,000); 84x84. Model: ResNet-34 with the ImageNet stem
      (7x7/2 conv + max-pool; 21.3M parameters), crop padding 8 (the 4/32 of CIFAR scaled to 84). The
      paper gives no schedule for miniImageNet; this keeps its CIFAR one. Expected: the paper reports no
      clean accuracy at 84x84; its Tab. 11 gives, on images downsampled to 74x74 and back, 67.9% (vanilla),
      69.3% (fixed 0.6), 65.7% (iterative 0.3 -> 0.6), 66.7% (finetune), and its Tab. 3 FGSM (eps 2/255, no
      test-time smoothing) 13.2% (vanilla) / 12.8% (fixed). Compute: 0.99 GFLOP per image forward, about 19
      PFLOP for 200 epochs.
  imagenet100: ``python -m train.fixed --preset=imagenet100 --data_dir=DIR``
      data: DIR holds ImageNet's ``train/`` and ``val/`` with ``<wnid>/`` class folders (val sorted into
      them) and, optionally, ``imagenet100.txt`` (one wnid a line); without it, CMC's ImageNet-100 (Tian et
      al. 2019), since the papers do not list their classes. Or TFDS ``imagenet2012`` prepared in DIR (a
      manual download). About 126,700 train / 5,000 test images, shorter side resized to 256 and centre
      cropped to 224x224 (held in host memory: about 19 GB of uint8). Model: ResNet-50 with the ImageNet stem
      (23.7M parameters): the main paper's App. B uses ResNet-50 on ImageNet-100 (``--model=resnet34`` for
      a ResNet-34); 100 epochs, batch 256, weight decay 1e-4, pad-and-crop 28 (no
      random-resized crop). Expected (the main paper's App. Tab. 5, ResNet-50): vanilla 79.36%, fixed 0.6
      75.51%, fixed 0.8 78.66%, iterative 74.39%. Compute: 8.0 GFLOP per image forward, about 300 PFLOP for
      100 epochs.

Time: not measured; no accelerator was available to the session that wrote these presets. Estimates for
one A100 / H100-class GPU in float32 (TF32), assuming an effective 10-30 TFLOP/s: cifar100 0.3-0.8 h,
miniimagenet 0.2-0.5 h, imagenet100 3-8 h of training, plus smoothing the training set once for
fixed / iterative / finetune (cached in ``cache/``; for ImageNet-100 at 224x224 this dominates). The ViT
(``--model=vit_tiny``) trains in any of these presets; these optimiser settings are the ResNets'.

Default workdirs: ``workdirs/<procedure key>_<preset>``, e.g. ``workdirs/fixed_s0.6_miniimagenet``.
"""

# eval_batch_size 400: a multiple of 8 and 16 devices (TPU v2-8 / v3-8 on Colab, pods); the last test batch
# is padded and masked.
PRESET_FIELDS = {
    "cifar100": {"dataset": "cifar100", "model": "resnet18", "stem": "cifar", "image_size": 0,
                 "eval_batch_size": 400},
    "miniimagenet": {"dataset": "miniimagenet", "model": "resnet34", "stem": "imagenet", "image_size": 84,
                     "crop_padding": 8, "eval_batch_size": 400},
    "imagenet100": {"dataset": "imagenet100", "model": "resnet50", "stem": "imagenet", "image_size": 224,
                    "epochs": 100, "batch_size": 256, "weight_decay": 1e-4, "crop_padding": 28,
                    "eval_batch_size": 400},
}

# The sparsity of fixed training and finetuning per preset: the later paper's choice (Zhou et al., arXiv
# 2409.18419: 0.6 on CIFAR, 0.3 on ImageNet); presets not listed keep 0.6. Where noisy data with its clean
# originals is at hand, iss_jax.select_sparsity chooses it by reconstruction error instead.
SPARSITY = {"imagenet100": 0.3}

PRESET_HELP = ("cifar100: ResNet-18 on CIFAR-100; miniimagenet: ResNet-34 (ImageNet stem) on the main "
               "paper's miniImageNet split at 84x84; imagenet100: ResNet-50 (ImageNet stem) on ImageNet-100 "
               "at 224x224; each with --data_dir (see train/configs/datasets.py).")
