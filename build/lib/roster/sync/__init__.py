"""Runs: connector -> reconcile -> apply."""
