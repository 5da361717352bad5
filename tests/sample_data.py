"""Where the tests find real images: the sample shipped in the package, and the larger real subset in
``../shared/data`` beside a clone (present in CI, absent in a bare clone)."""

from pathlib import Path

import iss_jax

REPO = Path(__file__).resolve().parents[1]
SAMPLE_PATH = Path(iss_jax.__file__).resolve().parent / "training" / "data" / "cifar10_sample.npz"
EXACT_PATH = REPO.parent / "shared" / "data" / "cifar10_exact.npz"
