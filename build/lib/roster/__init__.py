"""Roster: self-hosted directory synchronization."""

__version__ = "0.1.0"
