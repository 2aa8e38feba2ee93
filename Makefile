# Regenerated artefacts of the repository (the tests and CI do not need these targets).
PYTHON ?= python

.PHONY: leaderboard
leaderboard:  ## docs/leaderboard: the static leaderboard site from docs/results (docs/bench.md)
	$(PYTHON) benchmarks/leaderboard.py
