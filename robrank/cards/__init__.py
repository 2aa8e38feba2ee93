"""Model cards: ``robrank bench`` writes them, ``robrank bench --verify`` checks them, ``robrank leaderboard`` shows them.

:mod:`.schema` (the card format, standard library only), :mod:`.bench` (the evaluation),
:mod:`.verify` (re-evaluating a sample), :mod:`.site` (the static leaderboard). docs/bench.md.
"""
