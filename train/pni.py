"""PNI (Rakin et al. 2019): learned-scale weight noise, adversarially trained, noise kept at test time.

Usage: python -m train.pni [--pni=layerwise|channelwise] [--preset=quick|cpu|paper] [--workdir=...]
The quick and cpu presets train against FGSM with random start (Wong et al. 2020), paper against PGD-10.
Default workdir: workdirs/pni_<layerwise|channelwise> (plus _cpu / _paper for those presets).
Commands, runtimes and accuracies of each preset: train/configs/pni.py.
"""

from train import _main

if __name__ == "__main__":
  _main.entry("pni", ["pni"])
