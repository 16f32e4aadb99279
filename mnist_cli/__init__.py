"""mnist-cli: train, evaluate and use MNIST digit classifiers described in YAML."""

import os

__version__ = "0.1.0"

# OpenMP threads that wait spin ~3,000 rounds, then yield their core. With two busy processes on 2 cores, an epoch of
# default.yaml took 4.2-5.9 s at 3,000 and 3.6-11.0 s at 30,000 (quiet: 1.66 and 1.55 s); libgomp's default, 300,000,
# was up to 5x slower; not spinning at all (OMP_WAIT_POLICY=PASSIVE) made quiet epochs 1.5-2.4x slower. Read once,
# when torch loads (commands import it later); a user's own setting wins.
if "OMP_WAIT_POLICY" not in os.environ:
    os.environ.setdefault("GOMP_SPINCOUNT", "3000")
