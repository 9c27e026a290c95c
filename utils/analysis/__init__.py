"""Analysis of trained runs: episodes, region metrics per checkpoint, shared random data."""
