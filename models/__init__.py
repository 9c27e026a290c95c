"""Policy/value networks, PPO, normalization, checkpoints and the training run."""
from models.checkpoint import LoadedPolicy, load_checkpoint

__all__ = ["LoadedPolicy", "load_checkpoint"]
