"""Per-channel image statistics of the datasets (the models' input normalisation, the attacks' eps space).

``CIFAR10_STD`` is the population standard deviation of the 50,000 CIFAR-10 training images per RGB
channel in ``[0, 1]`` (0.24703, 0.24349, 0.26159), rounded to four digits as torchvision-style
pipelines publish it; ``IMAGENET_*`` are the torchvision ImageNet constants.
"""

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
