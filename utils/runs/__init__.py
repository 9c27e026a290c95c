"""Runs on disk: atomic I/O, the run store, sweep files and experiment tracking (wandb)."""
