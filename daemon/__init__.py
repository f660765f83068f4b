"""al-daemon: a long-running active-learning daemon for Argilla."""

__version__ = "0.2.0"
