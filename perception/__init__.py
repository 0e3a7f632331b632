"""radagent perception: load CT and masks, measure, emit Findings."""

__version__ = "0.1.0"
