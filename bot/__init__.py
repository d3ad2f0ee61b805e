"""revbot: speed-to-lead and deal support in Slack."""

__version__ = "0.1.0"
