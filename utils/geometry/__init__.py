"""Exact linear-region geometry of ReLU networks: 1-D paths and lines (regions), 2-D planes (planes)."""
