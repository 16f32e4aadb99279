"""`mnist sweep`: a grid of configs x seeds, each an ordinary run folder, trained in parallel and summarised per cell."""
