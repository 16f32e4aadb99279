"""A training run: set-up, epochs, checkpoints, resume, and the run folder it writes."""
