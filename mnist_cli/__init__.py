"""mnist-cli: train, evaluate and use MNIST digit classifiers described in YAML."""

import os

__version__ = "0.1.0"

# OpenMP threads that wait spin ~30,000 rounds, then yield their core: spinning 10x longer (libgomp's default) made
# epochs on a busy machine up to 5x slower, not spinning at all (OMP_WAIT_POLICY=PASSIVE) made quiet ones 1.5-2.4x
# slower. Read once, when torch loads (commands import it later); a user's own setting wins.
if "OMP_WAIT_POLICY" not in os.environ:
    os.environ.setdefault("GOMP_SPINCOUNT", "30000")
