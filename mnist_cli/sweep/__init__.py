"""`mnist sweep`: a grid of configs x seeds, each an ordinary run folder, trained in parallel and summarised per cell.

grid.py plans and validates, run.py trains one run (the function every backend calls), local.py and ray_backend.py
run many, results.py aggregates them into runs.csv and cells.csv, figures.py draws them, runner.py ties it together.
"""
