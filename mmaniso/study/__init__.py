"""The SynthFace evidence harness (not imported by ``import mmaniso``).

- :mod:`.runner`: train-then-test of one config and seed, with its record
  (shared by ``tools/demo.py`` and ``tools/misc/study.py``);
- :mod:`.tables`: the first round's tables a-d and the helpers every table
  uses (rows, run folders, figures);
- :mod:`.evidence`: the second round (tables e-h) and the pre-registered
  confirmation round: rows, seeds, comparisons and their statistics.
"""
