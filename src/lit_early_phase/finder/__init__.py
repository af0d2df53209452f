"""Which strategy, and will the period matter? A pilot run, its evidence, and the rule applied to it."""

from lit_early_phase.finder.pilot import EnlightenmentFinder, Recommendation
from lit_early_phase.finder.rule import Decision, Evidence, decide

__all__ = ["Decision", "EnlightenmentFinder", "Evidence", "Recommendation", "decide"]
