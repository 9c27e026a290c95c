"""Policy/value networks, PPO, normalization, checkpoints and the training run.

`from models import load_checkpoint, LoadedPolicy` works, but importing the package imports nothing else: the
evaluation worker (models/evaluation.py) must start without torch, which models.checkpoint needs.
"""
__all__ = ["LoadedPolicy", "load_checkpoint"]


def __getattr__(name: str):
    if name in __all__:
        import models.checkpoint

        return getattr(models.checkpoint, name)
    raise AttributeError(f"module 'models' has no attribute {name!r}")
