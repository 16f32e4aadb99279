"""What a finished (or running) training run shows: its run folder loaded as a RunRecord, verdicts in plain words."""
