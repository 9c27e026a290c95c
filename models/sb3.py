"""Stable-Baselines3 files read without SB3 and without running anything they pickle (docs/design.md, "Policies
from Stable-Baselines3").

- A model zip (`model.save`): the weights come from its `policy.pth` through torch.load(weights_only=True) (plain
  tensors only), the architecture and spaces from the readable fields of its JSON `data` member. Fields SB3 stored
  as ':serialized:' (cloudpickle) are never decoded. Loaded: PPO and A2C `MlpPolicy` (separate pi/vf nets, both
  2.x `net_arch` forms, and SB3 1.x shared layers `mlp_extractor.shared_net`), SAC and TD3 actors. Refused with
  one line: non-ReLU activations, CNN / dict-observation / non-Box policies, gSDE, anything else.
- VecNormalize statistics (`vecnormalize.pkl`, the paper's `*_stats.pth`): a pickle, read by `_StatsUnpickler`,
  which rebuilds numpy arrays and scalars with numpy's own reconstructors and turns the known SB3 / gym /
  gymnasium classes into inert `_Record`s (their pickled state, nothing run); every other global is refused
  before it is imported.
"""
from __future__ import annotations

import io
import json
import pickle
import re
import zipfile
from pathlib import Path

import numpy as np
import torch

from models.checkpoint import LoadedPolicy, load_checkpoint
from models.normalization import CLIP_OBS, EPSILON, ObsStatistics
from utils.errors import UserError

MAX_STATS_BYTES = 64 * 2**20  # a VecNormalize pickle of a flat observation is a few KB
ALGORITHMS = ("PPO", "A2C", "SAC", "TD3")


# ----------------------------------------------------------------------------------------------------------------
# Which files are what
# ----------------------------------------------------------------------------------------------------------------
def is_sb3_zip(path: Path | str) -> bool:
    """True for a zip archive with a top-level `data` member (SB3's layout; torch.save zips nest under a folder)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return "data" in archive.namelist()
    except (OSError, zipfile.BadZipFile, ValueError):
        return False


def load_policy_file(path: Path | str) -> LoadedPolicy:
    """The policy in a .pt checkpoint of ours or an SB3 model zip (told apart by the archive's layout)."""
    return read_sb3_policy(path) if is_sb3_zip(path) else load_checkpoint(path)


def load_statistics_file(path: Path | str) -> LoadedPolicy | ObsStatistics:
    """Normalization statistics for --stats_path: a .pt checkpoint of ours, or an SB3 VecNormalize pickle."""
    path = Path(path)
    if is_sb3_zip(path):
        raise UserError(f"{path} is an SB3 model, not statistics; pass its VecNormalize file (vecnormalize.pkl, the "
                        f"paper's *_stats.pth) as --stats_path")
    if path.is_file() and zipfile.is_zipfile(path):
        return load_checkpoint(path)
    return read_vecnormalize(path)


# ----------------------------------------------------------------------------------------------------------------
# Model zips
# ----------------------------------------------------------------------------------------------------------------
def _not_sb3(path: Path, problem: str) -> UserError:
    return UserError(f"{path} is not a Stable-Baselines3 model ({problem}); pass the .zip that SB3's model.save "
                     f"wrote, or a .pt checkpoint of train.py")


def read_sb3_members(path: Path) -> tuple[dict, bytes]:
    """(data as parsed JSON, policy.pth bytes) of an SB3 model zip; every way the archive can be wrong is a
    UserError naming it."""
    if not path.is_file():
        raise UserError(f"model file not found: {path}; pass the path of an SB3 model .zip")
    if not zipfile.is_zipfile(path):
        raise _not_sb3(path, "not a zip archive: truncated, or another format")
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            if "data" not in names:
                raise _not_sb3(path, "a zip without SB3's `data` member: truncated, or not written by model.save")
            if "policy.pth" not in names:
                raise UserError(f"SB3 model {path} has no policy.pth (its weights); pass a model saved with "
                                f"model.save, which writes them")
            bad = archive.testzip()
            if bad is not None:
                raise UserError(f"SB3 model {path} is corrupt (its member {bad} fails its checksum); "
                                f"use another copy of the model")
            data_bytes, weights = archive.read("data"), archive.read("policy.pth")
    except UserError:
        raise
    except Exception as err:  # a damaged zip directory fails in many ways inside zipfile
        raise UserError(f"SB3 model {path} is truncated or corrupt ({type(err).__name__}); use another copy of "
                        f"the model") from None
    try:
        data = json.loads(data_bytes)
    except ValueError:
        raise _not_sb3(path, "its `data` member is not JSON") from None
    if not isinstance(data, dict):
        raise _not_sb3(path, "its `data` member is not a JSON object")
    return data, weights


def _class_names(field) -> set[str]:
    """Class names a readable ':serialized:' field mentions ("<class 'a.b.C'>", "<function C.method at ...>")."""
    text = json.dumps(field) if not isinstance(field, str) else field
    return set(re.findall(r"<function (\w+)\.", text)) | set(re.findall(r"<class '[\w.]*?(\w+)'>", text))


def _algorithm(path: Path, data: dict) -> str:
    """PPO, A2C, SAC or TD3, from the policy class's module (a readable field) and the algorithm's own data keys."""
    policy_class = data.get("policy_class")
    module = policy_class.get("__module__") if isinstance(policy_class, dict) else None
    if not isinstance(module, str):
        raise _not_sb3(path, "its data has no readable policy_class")
    names = _class_names(policy_class)
    if not module.startswith("stable_baselines3."):
        raise UserError(f"{path} holds a {module} policy, which this cannot read; supported are SB3's "
                        f"{', '.join(ALGORITHMS)} MLP policies")
    if any("Cnn" in n for n in names):
        raise UserError(f"{path} holds a CNN policy ({', '.join(sorted(names & {n for n in names if 'Cnn' in n}))}); "
                        f"the region analysis needs a ReLU MLP on a flat observation: pass an MlpPolicy model")
    if any("MultiInput" in n for n in names):
        raise UserError(f"{path} holds a dict-observation policy (MultiInputPolicy); the region analysis needs a "
                        f"ReLU MLP on a flat observation: pass an MlpPolicy model")
    if module in ("stable_baselines3.common.policies", "stable_baselines3.ppo.policies",
                  "stable_baselines3.a2c.policies"):
        return "PPO" if "clip_range" in data else "A2C"
    if module == "stable_baselines3.sac.policies":
        return "SAC"
    if module == "stable_baselines3.td3.policies":
        return "TD3"
    raise UserError(f"{path} holds a policy of {module}, an algorithm this cannot read; supported are SB3's "
                    f"{', '.join(ALGORITHMS)} MLP policies")


def _box(path: Path, data: dict, key: str) -> tuple[tuple[int, ...], np.ndarray | None, np.ndarray | None]:
    """(shape, low, high) of a Box space from its readable fields; low/high None when their text is unreadable."""
    space = data.get(key)
    kind = space.get(":type:", "") if isinstance(space, dict) else ""
    if "Dict" in kind:
        raise UserError(f"{path} is a dict-observation policy ({kind}); the region analysis needs a ReLU MLP on a "
                        f"flat Box observation: pass an MlpPolicy model")
    if not kind.endswith("spaces.box.Box'>"):
        what = "observations" if key == "observation_space" else "actions"
        raise UserError(f"{path} has {what} of space {kind or 'unknown'}; only Box (continuous) observations and "
                        f"actions can be analysed: pass a policy of a continuous-control env")
    shape = space.get("_shape", space.get("shape"))
    if not (isinstance(shape, list) and all(isinstance(n, int) and n > 0 for n in shape)):
        raise _not_sb3(path, f"its {key} has no readable shape")
    bounds = []
    for side in ("low", "high"):
        numbers = re.findall(r"[-+]?(?:inf|nan|\d+\.?\d*(?:e[-+]?\d+)?|\.\d+(?:e[-+]?\d+)?)", str(space.get(side)))
        values = np.array([float(v) for v in numbers], dtype=np.float64)
        bounds.append(values if values.size == int(np.prod(shape)) else None)
    return tuple(shape), bounds[0], bounds[1]


def _activation(path: Path, data: dict, algorithm: str) -> None:
    """Refuse any activation but ReLU (SB3's default is Tanh for PPO/A2C, ReLU for SAC/TD3)."""
    kwargs = data.get("policy_kwargs")
    named = kwargs.get("activation_fn") if isinstance(kwargs, dict) else None
    if named is None:
        name = "Tanh" if algorithm in ("PPO", "A2C") else "ReLU"
        source = f"SB3's default for {algorithm}"
    else:
        found = re.findall(r"(\w+)'>", str(named))
        name, source = (found[-1] if found else str(named)), "its policy_kwargs"
    if name != "ReLU":
        raise UserError(f"{path} is a {name} policy ({source}); the region analysis needs a piecewise-linear ReLU "
                        f"network: train with policy_kwargs=dict(activation_fn=torch.nn.ReLU)")
    if kwargs is not None and not isinstance(kwargs, dict):
        raise _not_sb3(path, "its policy_kwargs are unreadable")
    extractor = kwargs.get("features_extractor_class") if isinstance(kwargs, dict) else None
    if extractor is not None and "FlattenExtractor" not in str(extractor):
        raise UserError(f"{path} uses the features extractor {extractor}; the region analysis needs a ReLU MLP on "
                        f"the flat observation: pass an MlpPolicy model")


def _chain(path: Path, weights: dict, prefix: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The Linear layers of an nn.Sequential of Linear/activation pairs stored under `prefix` (indices 0, 2, ...)."""
    indices = sorted(int(m.group(1)) for k in weights
                     if (m := re.fullmatch(re.escape(prefix) + r"(\d+)\.weight", k)))
    if indices != list(range(0, 2 * len(indices), 2)):
        raise _not_sb3(path, f"its {prefix}* layers are not a Linear/activation chain")
    return [_linear(path, weights, f"{prefix}{i}.") for i in indices]


def _linear(path: Path, weights: dict, prefix: str) -> tuple[torch.Tensor, torch.Tensor]:
    W, b = weights.get(prefix + "weight"), weights.get(prefix + "bias")
    if not (isinstance(W, torch.Tensor) and isinstance(b, torch.Tensor) and W.is_floating_point()
            and b.is_floating_point() and W.dim() == 2 and b.shape == W.shape[:1]):
        raise _not_sb3(path, f"policy.pth has no float Linear layer {prefix}weight/bias")
    return W.detach().double(), b.detach().double()


def _net_arch_pi(net_arch) -> list[int] | None:
    """Hidden sizes of the action net that `net_arch` describes (2.x list/dict forms, 1.x [shared..., dict]);
    None when it is not readable."""
    if isinstance(net_arch, dict):
        return list(net_arch.get("pi", []))
    if isinstance(net_arch, list):
        shared = [n for n in net_arch if isinstance(n, int)]
        heads = [d for d in net_arch if isinstance(d, dict)]
        if not heads:
            return shared
        return shared + list(heads[0].get("pi", []))
    return None


def read_sb3_policy(path: Path | str, *, iteration: int = 0) -> LoadedPolicy:
    """An SB3 model zip's deterministic actor as a LoadedPolicy (no normalization: apply its VecNormalize
    statistics with `with_statistics(read_vecnormalize(...))`)."""
    path = Path(path)
    data, weight_bytes = read_sb3_members(path)
    algorithm = _algorithm(path, data)
    obs_shape, _, _ = _box(path, data, "observation_space")
    act_shape, act_low, act_high = _box(path, data, "action_space")
    if len(obs_shape) != 1:
        raise UserError(f"{path} takes observations of shape {obs_shape} (images?); the region analysis needs a "
                        f"ReLU MLP on a flat observation: pass an MlpPolicy model")
    if data.get("use_sde"):
        raise UserError(f"{path} was trained with gSDE (use_sde=True), whose noise depends on the state; pass a "
                        f"model trained without gSDE")
    _activation(path, data, algorithm)
    try:
        weights = torch.load(io.BytesIO(weight_bytes), map_location="cpu", weights_only=True)
    except Exception as err:  # a refused global or a damaged archive: either way not plain weights
        raise UserError(f"policy.pth in {path} is not a plain tensor state dict ({type(err).__name__}); use "
                        f"another copy of the model") from None
    if not isinstance(weights, dict):
        raise _not_sb3(path, "policy.pth is not a state dict")
    if any(k.startswith(("features_extractor.cnn", "pi_features_extractor.cnn")) for k in weights):
        raise UserError(f"{path} holds a CNN policy; the region analysis needs a ReLU MLP on a flat observation: "
                        f"pass an MlpPolicy model")
    act_dim = int(np.prod(act_shape))
    log_std_net, squash = None, None
    if algorithm in ("PPO", "A2C"):
        layers = [*_chain(path, weights, "mlp_extractor.shared_net."), *_chain(path, weights, "mlp_extractor.policy_net."),
                  _linear(path, weights, "action_net.")]
        log_std = weights.get("log_std")
        if not isinstance(log_std, torch.Tensor) or tuple(log_std.shape) != (act_dim,):
            raise _not_sb3(path, f"policy.pth has no log_std of shape ({act_dim},)")
        log_std = log_std.detach().double()
    elif algorithm == "SAC":
        layers = [*_chain(path, weights, "actor.latent_pi."), _linear(path, weights, "actor.mu.")]
        log_std_net = _linear(path, weights, "actor.log_std.")
        log_std, squash = torch.full((act_dim,), float("nan"), dtype=torch.float64), "tanh"
    else:  # TD3: actor.mu = Linear, ReLU, ..., Linear, Tanh; no noise of its own (std 0)
        layers = _chain(path, weights, "actor.mu.")
        log_std, squash = torch.full((act_dim,), float("-inf"), dtype=torch.float64), "tanh"
    if len(layers) < 2:
        raise UserError(f"{path} has no hidden layer (net_arch=[]); the region analysis needs a ReLU MLP with at "
                        f"least one hidden layer")
    for (W_prev, _), (W, _) in zip(layers, layers[1:]):
        if W.shape[1] != W_prev.shape[0]:
            raise _not_sb3(path, "its layers' shapes do not follow on")
    if layers[0][0].shape[1] != int(np.prod(obs_shape)) or layers[-1][0].shape[0] != act_dim:
        raise _not_sb3(path, f"its network does not map {int(np.prod(obs_shape))} observations to {act_dim} actions")
    widths = [int(W.shape[0]) for W, _ in layers[:-1]]
    declared = _net_arch_pi((data.get("policy_kwargs") or {}).get("net_arch")
                            if isinstance(data.get("policy_kwargs"), dict) else None)
    if declared is not None and declared != widths:
        raise _not_sb3(path, f"its weights have hidden layers {widths} but its net_arch says {declared}")
    if squash is not None and (act_low is None or act_high is None or not np.isfinite([*act_low, *act_high]).all()
                               or not (act_low < act_high).all()):
        raise UserError(f"{path} is a {algorithm} policy whose action bounds cannot be read from its data; its "
                        f"actions are tanh rescaled to those bounds, so they are needed: pass a model of a "
                        f"bounded Box action space")
    timesteps = data.get("num_timesteps", 0)
    config = {"source": "stable-baselines3", "algorithm": algorithm, "policy_dims": widths}
    obs_dim = int(np.prod(obs_shape))
    return LoadedPolicy(path, int(iteration), int(timesteps) if isinstance(timesteps, int) and timesteps >= 0 else 0,
                        config, layers[:-1], layers[-1], log_std, np.zeros(obs_dim), np.ones(obs_dim), False,
                        squash=squash, action_low=act_low if squash else None,
                        action_high=act_high if squash else None, log_std_net=log_std_net)


# ----------------------------------------------------------------------------------------------------------------
# VecNormalize statistics
# ----------------------------------------------------------------------------------------------------------------
class _Record:
    """An inert stand-in for an SB3 / gym / gymnasium object in a pickle: it keeps the arguments and state it was
    given and runs nothing of the real class."""

    qualified = "?"
    args: tuple = ()
    state: dict = {}

    def __init__(self, *args, **kwargs):
        self.args, self.state = args, dict(kwargs)

    def __setstate__(self, state) -> None:
        if (isinstance(state, tuple) and len(state) == 2
                and all(part is None or isinstance(part, dict) for part in state)):  # (dict state, slot state)
            state = {**(state[0] or {}), **(state[1] or {})}
        self.state = dict(state) if isinstance(state, dict) else {"state": state}


def _numpy_multiarray():
    try:
        from numpy._core import multiarray  # numpy >= 2
    except ImportError:  # numpy 1.x
        from numpy.core import multiarray
    return multiarray


# Globals rebuilt for real: numpy's array / scalar / dtype reconstruction (numpy 1.x and 2.x module names), and
# two harmless builtins pickle itself uses (bytes under protocol 2, OrderedDict of Dict spaces).
def _latin1_encode(text: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """What numpy's pickles use _codecs.encode for: array bytes stored as a latin-1 string. Any other codec (there
    are codecs that decompress or import) is refused, so an allowed name cannot be turned into a tool."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise _Refused("_codecs.encode with", repr(encoding)[:20])
    return text.encode("latin-1", errors)


_NUMPY = {("numpy", "ndarray"): lambda: np.ndarray, ("numpy", "dtype"): lambda: np.dtype,
          **{(m, "_reconstruct"): lambda: _numpy_multiarray()._reconstruct
             for m in ("numpy.core.multiarray", "numpy._core.multiarray")},
          **{(m, "scalar"): lambda: _numpy_multiarray().scalar for m in ("numpy.core.multiarray", "numpy._core.multiarray")},
          ("_codecs", "encode"): lambda: _latin1_encode,
          ("collections", "OrderedDict"): lambda: __import__("collections").OrderedDict}
# Classes that become inert records: SB3's VecNormalize and RunningMeanStd, gym's and gymnasium's spaces, and numpy's
# random generators (a space's seeded generator; never needed, never run).
_SPACES = ("Box", "Discrete", "MultiDiscrete", "MultiBinary", "Dict", "Tuple")
_RECORDS = {("stable_baselines3.common.vec_env.vec_normalize", "VecNormalize"),
            ("stable_baselines3.common.running_mean_std", "RunningMeanStd"),
            *((f"{pkg}.spaces.{mod}", cls) for pkg in ("gym", "gymnasium") for mod, cls in
              (("box", "Box"), ("discrete", "Discrete"), ("multi_discrete", "MultiDiscrete"),
               ("multi_binary", "MultiBinary"), ("dict", "Dict"), ("tuple", "Tuple"))),
            ("numpy.random._pickle", "__generator_ctor"), ("numpy.random._pickle", "__bit_generator_ctor"),
            ("numpy.random._pickle", "__randomstate_ctor"), ("numpy.random.bit_generator", "__pyx_unpickle_SeedSequence"),
            ("numpy.random.bit_generator", "SeedSequence"), ("numpy.random.mtrand", "RandomState"),
            *(("numpy.random._" + m.lower(), m) for m in ("PCG64", "MT19937", "Philox", "SFC64")),
            ("numpy.random._pcg64", "PCG64DXSM")}


class _Refused(Exception):
    def __init__(self, module: str, name: str):
        super().__init__(f"{module}.{name}")


class _StatsUnpickler(pickle.Unpickler):
    """pickle.Unpickler that imports nothing: numpy reconstructors (allow-list), inert records, else _Refused."""

    def find_class(self, module: str, name: str):
        if (module, name) in _NUMPY:
            return _NUMPY[(module, name)]()
        if (module, name) in _RECORDS:
            return type(name, (_Record,), {"qualified": f"{module}.{name}"})
        raise _Refused(module, name)

    def persistent_load(self, pid):
        raise _Refused("persistent id", str(pid)[:40])


def _stats_problem(path: Path, problem: str) -> UserError:
    return UserError(f"{path} is not a VecNormalize statistics file ({problem}); pass the file that SB3's "
                     f"VecNormalize.save wrote (vecnormalize.pkl, the paper's *_stats.pth) or a .pt checkpoint")


def read_vecnormalize(path: Path | str) -> ObsStatistics:
    """Observation mean, variance, clip_obs, epsilon and norm_obs of an SB3 VecNormalize pickle (SB3 1.x with gym or
    2.x with gymnasium), read without importing or running anything outside the allow-list."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"statistics file not found: {path}; pass the VecNormalize file saved with the model")
    if path.stat().st_size > MAX_STATS_BYTES:
        raise _stats_problem(path, f"larger than {MAX_STATS_BYTES // 2**20} MiB")
    try:
        top = _StatsUnpickler(io.BytesIO(path.read_bytes())).load()
    except _Refused as err:
        raise UserError(f"refusing to load {path}: it references {err}, which reading statistics never imports or "
                        f"runs (only numpy arrays and SB3/gym/gymnasium records are rebuilt); pass a VecNormalize "
                        f"file written by SB3") from None
    except Exception as err:  # truncated or not a pickle at all: pickle fails in many ways
        raise _stats_problem(path, f"not a readable pickle: {type(err).__name__}") from None
    if not (isinstance(top, _Record) and top.qualified.endswith(".VecNormalize")):
        what = top.qualified if isinstance(top, _Record) else type(top).__name__
        raise _stats_problem(path, f"it holds a {what}, not a VecNormalize")
    state = top.state
    rms = state.get("obs_rms")
    if isinstance(rms, dict):
        raise UserError(f"{path} normalizes dict observations; the region analysis needs a flat observation: pass "
                        f"the statistics of an MlpPolicy model")
    if not (isinstance(rms, _Record) and rms.qualified.endswith(".RunningMeanStd")):
        raise _stats_problem(path, "its VecNormalize has no obs_rms RunningMeanStd")
    mean, var = rms.state.get("mean"), rms.state.get("var")
    if not all(isinstance(a, np.ndarray) and a.ndim == 1 and a.dtype.kind == "f" and a.size > 0 for a in (mean, var)) \
            or mean.shape != var.shape:
        raise _stats_problem(path, "its obs_rms mean and var are not float vectors of one size")
    if not (np.isfinite(mean).all() and np.isfinite(var).all() and (var >= 0).all()):
        raise _stats_problem(path, "its statistics are not finite, or a variance is negative")
    constants = {}
    for key, default in (("clip_obs", CLIP_OBS), ("epsilon", EPSILON)):
        value = state.get(key, default)
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 < value < float("inf")):
            raise _stats_problem(path, f"its {key} is not a positive number")
        constants[key] = float(value)
    norm_obs = state.get("norm_obs", True)
    if not isinstance(norm_obs, (bool, np.bool_)):
        raise _stats_problem(path, "its norm_obs is not a bool")
    return ObsStatistics(path, mean.astype(np.float64), var.astype(np.float64), bool(norm_obs), **constants)
