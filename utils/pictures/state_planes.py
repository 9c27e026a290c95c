"""Exact pictures of a policy's linear regions on a 2-D plane of *raw* state space: the planes, the partitions, the
values that colour them (drawing itself is in ``utils.pictures.partition_drawing``).

A ``StatePlane`` is fixed in raw state space, r(w) = origin + w @ basis with display coordinates w in a convex
``domain``. Each checkpoint sees it through its own normalization x = (r - mean) / std (docs/design.md, "Metrics"),
an affine map, so in its input space the plane is x(w) = normalize(origin) + w @ (basis / std): the same raw
states and the same patch of the plane for every checkpoint, which makes frames of a run comparable.

- High-dimensional states (the paper's method): three raw states s1, s2, s3 from stochastic episodes of a
  reference policy (a run's best checkpoint); the plane through their normalized images in the reference policy's
  input space, centred at their circumcentre with an orthonormal basis there, and the domain square 1.25 times
  wider than their circumcircle (``utils.geometry.planes.plane_through_states``). Display coordinates w are that plane's
  coordinates, in the reference policy's normalized input units. For the reference policy this is exactly the
  paper's picture; every other checkpoint's plane passes through its own normalized images of the same s1, s2, s3.
- Two-dimensional state spaces (Car1D, MountainCarContinuous): the plane is the state space; w = the raw state.
  Its default view (``visited_view``) is the box around visited states (visualize_hd.py passes the run's fixed
  trajectory, in one image also the drawn checkpoint's, and the target) widened by VIEW_MARGIN of its span on each
  side: there the regions the agent meets are large enough to see. ``default_state_space_bounds`` gives the env's
  fixed box instead.

Observation clipping: policies clip normalized inputs to +-clip_obs (VecNormalize; 10 for ours). By default the partition is exact
for the policy as a function of the raw state, clip included: clipping is itself a ReLU layer,
clip(x) = -10 + relu(x + 10) - relu(x - 10), so it is prepended to the hidden layers (2 d extra neurons whose zero
lines are the clip boundaries; they cut nothing where no input is clipped). Region colours and the 'slope'
colouring use the policy's own neurons; ``clip_polygon`` gives the part of the domain where no input is clipped
(the drawing outlines it). ``clip_inputs=False`` partitions the bare network on the unclipped affine image instead.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from envs.resolve import make_env
from models.checkpoint import LoadedPolicy
from utils.errors import UserError
from utils.geometry.planes import PlanePartition, plane_partition, plane_through_states
from utils.geometry.polygons import SPAN_RTOL, area_centroids, clip_to_halfplane, linearly_independent
from utils.geometry.regions import input_jacobian, word_offsets
from utils.analysis.trajectories import sample_episode

COLORINGS = ("region", "action", "slope")
# Display coordinates of a plane through three states: orthonormal in the reference policy's normalized input space.
PLANE_AXIS_LABELS = ("plane coordinate 1 (normalized input units)", "plane coordinate 2 (normalized input units)")
# Toy tasks whose state space is the plane: default bounds (x, then y) and names of the two state variables.
STATE_SPACE_DEFAULTS: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {
    "Car1DEnv-v0": ((-50.0, 150.0), (-20.0, 20.0)),
    "Car1DEnv-v1": ((-50.0, 150.0), (-20.0, 20.0)),
    "MountainCarContinuous-v0": ((-1.2, 0.6), (-0.07, 0.07)),
}
VIEW_MARGIN = 0.15  # the automatic view: the visited box widened by this fraction of its span on each side ...
MIN_VIEW_SPAN = 0.02  # ... each side at least this fraction of the env's fixed box (a constant coordinate, a
# trajectory that never moves, still gets a band of the state space around it)
_TARGETS = {"Car1DEnv-v0": (100.0, 0.0), "Car1DEnv-v1": (100.0, 0.0), "MountainCarContinuous-v0": (0.45, 0.0)}


# --------------------------------------------------------------------------------------------------------------
# Environments
# --------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EnvInfo:
    """What the pictures need to know about an env: its id, observation size and state names."""

    env_id: str
    obs_dim: int
    state_names: tuple[str, ...]
    obs_low: tuple[float, ...] = ()  # the observation space's bounds (+-inf where unbounded)
    obs_high: tuple[float, ...] = ()


def env_info(env_id: str) -> EnvInfo:
    """Observation size, state names and observation bounds of an already resolved env id."""
    env = make_env(env_id)
    try:
        obs_dim = int(np.prod(env.observation_space.shape))
        low = tuple(float(v) for v in np.ravel(env.observation_space.low))
        high = tuple(float(v) for v in np.ravel(env.observation_space.high))
        names = getattr(env.unwrapped, "state_names", None)
        if names is None and env_id.startswith("MountainCarContinuous"):
            names = ("position", "velocity")
        names = tuple(names) if names is not None and len(names) == obs_dim else tuple(f"s{i}" for i in range(obs_dim))
    finally:
        env.close()
    return EnvInfo(env_id, obs_dim, names, low, high)


def default_state_space_bounds(env_id: str) -> tuple[tuple[float, float], tuple[float, float]]:
    """Default (xlim, ylim) of a 2-D state space; finite observation bounds when the env has them."""
    if env_id in STATE_SPACE_DEFAULTS:
        return STATE_SPACE_DEFAULTS[env_id]
    env = make_env(env_id)
    low, high = env.observation_space.low.astype(float), env.observation_space.high.astype(float)
    env.close()
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
        raise UserError(f"{env_id} has an unbounded state space; pass --xlim=MIN,MAX and --ylim=MIN,MAX")
    return (float(low[0]), float(high[0])), (float(low[1]), float(high[1]))


def visited_view(states: np.ndarray, *, reference: tuple[tuple[float, float], tuple[float, float]] | None = None,
                 low: Sequence[float] = (), high: Sequence[float] = ()
                 ) -> tuple[tuple[float, float], tuple[float, float]]:
    """(xlim, ylim) around raw 2-D states (N, 2): their bounding box widened by VIEW_MARGIN of its span on each
    side, each side at least MIN_VIEW_SPAN of the `reference` box's (else of the largest coordinate's magnitude),
    and cut to the observation bounds `low`, `high` where they are finite."""
    states = np.asarray(states, dtype=np.float64).reshape(-1, 2)
    states = states[np.all(np.isfinite(states), axis=1)]
    if not len(states):
        raise UserError("no finite visited states to frame; pass --xlim=MIN,MAX and --ylim=MIN,MAX")
    lo, hi = states.min(axis=0), states.max(axis=0)
    if reference is not None:
        floor = MIN_VIEW_SPAN * np.array([reference[0][1] - reference[0][0], reference[1][1] - reference[1][0]])
    else:
        floor = MIN_VIEW_SPAN * np.maximum(np.abs(states).max(axis=0), 1e-6)
    center, half = (lo + hi) / 2, np.maximum(hi - lo, floor) * (0.5 + VIEW_MARGIN)
    lo, hi = center - half, center + half
    if len(low) == 2 and len(high) == 2:
        bound_lo, bound_hi = np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
        lo = np.where(np.isfinite(bound_lo), np.maximum(lo, bound_lo), lo)
        hi = np.where(np.isfinite(bound_hi), np.minimum(hi, bound_hi), hi)
    return (float(lo[0]), float(hi[0])), (float(lo[1]), float(hi[1]))


def target_state(env_id: str) -> tuple[float, float] | None:
    """The goal state of a toy task in raw state coordinates, if it has one."""
    return _TARGETS.get(env_id)


# --------------------------------------------------------------------------------------------------------------
# Planes in raw state space
# --------------------------------------------------------------------------------------------------------------
@dataclass
class StatePlane:
    """A plane in raw state space, r(w) = origin + w @ basis, drawn over a convex domain of display coordinates w."""

    origin: np.ndarray  # (d,) raw state at w = 0
    basis: np.ndarray  # (2, d) raw state per unit of w
    domain: np.ndarray  # (V, 2) convex polygon, counter-clockwise, display coordinates
    kind: str  # "states" (three sampled states) or "state_space" (the 2-D state space itself)
    axis_labels: tuple[str, str]
    states: np.ndarray | None = None  # (3, d) raw states the plane goes through
    state_coords: np.ndarray | None = None  # (3, 2) their display coordinates
    info: dict = field(default_factory=dict)  # how the plane was built (seed, reference checkpoint, ...)

    @property
    def bounds(self) -> tuple[tuple[float, float], tuple[float, float]]:
        lo, hi = self.domain.min(0), self.domain.max(0)
        return (float(lo[0]), float(hi[0])), (float(lo[1]), float(hi[1]))

    def to_display(self, states: np.ndarray) -> np.ndarray:
        """Display coordinates (N, 2) of raw states (N, d) projected onto the plane (least squares)."""
        rel = np.asarray(states, dtype=np.float64) - self.origin
        return np.linalg.lstsq(self.basis.T, rel.T, rcond=None)[0].T


def state_space_plane(xlim: Sequence[float], ylim: Sequence[float], state_names: Sequence[str]) -> StatePlane:
    """The 2-D state space itself as the plane, over the box xlim x ylim (raw units)."""
    (x0, x1), (y0, y1) = xlim, ylim
    if not (x0 < x1 and y0 < y1):
        raise UserError(f"bounds must have min < max, got x {list(xlim)} and y {list(ylim)}")
    domain = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)
    return StatePlane(np.zeros(2), np.eye(2), domain, "state_space", (str(state_names[0]), str(state_names[1])),
                      info={"xlim": [x0, x1], "ylim": [y0, y1]})


def plane_through_raw_states(states: np.ndarray, reference: LoadedPolicy, scale: float) -> StatePlane:
    """The paper's plane through three raw states, built in the reference policy's normalized input space."""
    states = np.asarray(states, dtype=np.float64)
    if states.shape != (3, reference.obs_dim):
        raise UserError(f"need three states of {reference.obs_dim} numbers, got shape {states.shape}")
    mean, std = reference.normalization_affine()
    x = (states - mean) / std  # unclipped, so the raw plane is the exact preimage
    plane = plane_through_states(x[0], x[1], x[2], scale)
    origin = plane.origin.numpy() * std + mean
    basis = plane.basis.numpy() * std
    return StatePlane(origin, basis, plane.domain.numpy(), "states", PLANE_AXIS_LABELS,
                      states=states, state_coords=plane.state_coords.numpy(),
                      info={"scale": scale, "reference": str(reference.path)})


def sample_states(env_id: str, policy: LoadedPolicy, num_episodes: int, seed: int,
                  max_steps: int | None = None) -> np.ndarray:
    """Raw states of `num_episodes` stochastic episodes of the policy (episode k seeded with seed + k), stacked."""
    episodes = [sample_episode(env_id, policy, stochastic=True, seed=seed + k, max_steps=max_steps).states
                for k in range(num_episodes)]
    return np.concatenate(episodes, axis=0)


def choose_three_states(pool: np.ndarray, reference: LoadedPolicy, seed: int, tries: int = 100) -> np.ndarray:
    """Three distinct states drawn at random (numpy default_rng(seed)) that span a plane in the reference's input space."""
    if len(pool) < 3:
        raise UserError(f"the episodes gave only {len(pool)} states; raise --num_episodes")
    rng = np.random.default_rng(seed)
    mean, std = reference.normalization_affine()
    for _ in range(tries):
        idx = rng.choice(len(pool), size=3, replace=False)
        x = (pool[idx] - mean) / std  # unclipped, as plane_through_raw_states builds the plane
        if linearly_independent(x[1] - x[0], x[2] - x[0], SPAN_RTOL):  # what plane_through_states accepts
            return pool[idx]
    raise UserError("the sampled states do not span a plane (all equal or collinear); try another --seed "
                    "or more --num_episodes")


# --------------------------------------------------------------------------------------------------------------
# Partitions
# --------------------------------------------------------------------------------------------------------------
def policy_plane(policy: LoadedPolicy, plane: StatePlane) -> tuple[np.ndarray, np.ndarray]:
    """(origin (d,), basis (2, d)) of the plane in this policy's (unclipped) normalized input space."""
    if plane.origin.shape != (policy.obs_dim,):
        raise UserError(f"the plane lives in a {plane.origin.shape[0]}-D state space but {policy.path} takes "
                        f"{policy.obs_dim} observations; pass checkpoints of the same env")
    mean, std = policy.normalization_affine()
    return (plane.origin - mean) / std, plane.basis / std


def clip_polygon(policy: LoadedPolicy, plane: StatePlane) -> np.ndarray | None:
    """Part of the domain (display coords) where the policy clips no input, or None when that is the whole domain."""
    if not policy.obs_norm_enabled:
        return None
    origin, basis = policy_plane(policy, plane)
    poly = plane.domain.copy()
    for j in range(origin.shape[0]):
        for sign in (1.0, -1.0):
            # keep sign * (origin_j + w @ basis_j) <= clip_obs
            poly = clip_to_halfplane(poly, -sign * basis[:, j], policy.clip_obs - sign * origin[j])
            if len(poly) < 3:
                return np.zeros((0, 2))
    if len(poly) == len(plane.domain) and np.allclose(poly, plane.domain):
        return None
    return poly


def clipped_hidden_layers(policy: LoadedPolicy) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Hidden layers of network(clip(x)) on unclipped normalized inputs x: a first layer [relu(x + c), relu(x - c)]
    (2 d neurons, c = the policy's clip_obs, 10 for ours), then the policy's first layer rewritten to act on it;
    the rest unchanged."""
    W1, b1 = policy.hidden_layers[0]
    d = W1.shape[1]
    c = float(policy.clip_obs)
    eye = torch.eye(d, dtype=torch.float64)
    clip_layer = (torch.cat([eye, eye]), torch.cat([torch.full((d,), c), torch.full((d,), -c)]).double())
    first = (torch.cat([W1, -W1], dim=1), b1 - c * W1.sum(1))
    return [clip_layer, first, *policy.hidden_layers[1:]]


def partition_layers(policy: LoadedPolicy, clip_inputs: bool = True) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The hidden layers whose plane partition is drawn: clip layer + policy when the policy clips its inputs."""
    if clip_inputs and policy.obs_norm_enabled:
        return clipped_hidden_layers(policy)
    return list(policy.hidden_layers)


def policy_patterns(policy: LoadedPolicy, part: PlanePartition) -> torch.Tensor:
    """Packed patterns (R, W) of the policy's own hidden neurons (a prepended clip layer's words dropped)."""
    extra = len(part.layer_widths) - len(policy.widths)
    return part.patterns[:, word_offsets(part.layer_widths)[extra]:] if extra else part.patterns


def partition_on_plane(policy: LoadedPolicy, plane: StatePlane, *, clip_inputs: bool = True,
                       device: str = "cpu") -> PlanePartition:
    """Exact linear regions of the policy on the plane (utils.geometry.planes core); vertices in display coordinates."""
    origin, basis = policy_plane(policy, plane)
    return plane_partition(partition_layers(policy, clip_inputs), policy.head, (origin, basis), plane.domain,
                           device=device)


def region_centroids(part: PlanePartition) -> np.ndarray:
    """Area centroids (R, 2) of the partition's polygons, display coordinates."""
    return area_centroids(part.vertices.cpu().numpy())


def region_values(policy: LoadedPolicy, part: PlanePartition, color: str) -> np.ndarray | None:
    """Per-region scalar for continuous colourings: 'action' = ||action mean|| at the region's centroid (before the
    env clips actions; squashed and rescaled for a squashing policy); 'slope' = Frobenius norm of d(action mean)/d(normalized input) on the region (zero along
    clipped inputs); None for 'region'."""
    if color == "region":
        return None
    if color == "action":
        c = torch.as_tensor(region_centroids(part), dtype=torch.float64)
        actions = part.action_offset + torch.einsum("rad,rd->ra", part.action_slope, c)
        # a squashing policy (SB3's SAC, TD3) acts with tanh of the head, rescaled: colour by the real action
        return np.linalg.norm(policy.squash_actions(actions.numpy()), axis=1)
    if color == "slope":
        layers = policy.hidden_layers if len(part.layer_widths) == len(policy.widths) else clipped_hidden_layers(policy)
        jac = input_jacobian(layers, policy.head, part.patterns)
        return torch.linalg.matrix_norm(jac).numpy()
    raise UserError(f"unknown colouring '{color}'; use one of {', '.join(COLORINGS)}")


@dataclass
class PlaneFrame:
    """Everything one panel shows: a checkpoint's partition of a plane, its colouring and overlays."""

    policy: LoadedPolicy
    plane: StatePlane
    partition: PlanePartition
    color: str
    values: np.ndarray | None  # (R,) for continuous colourings
    clip: np.ndarray | None  # polygon where no input is clipped, None = everywhere
    env_id: str
    label: str = ""  # run id or checkpoint name, shown in titles
    trajectory: np.ndarray | None = None  # (T, 2) display coordinates of the deterministic trajectory
    target: tuple[float, float] | None = None

    @property
    def num_regions(self) -> int:
        return int(self.partition.num_regions)


def deterministic_states(env_id: str, policy: LoadedPolicy, seed: int) -> np.ndarray:
    """Raw states (T, d) of the policy's deterministic episode from `seed`: the trajectory drawn over a state space."""
    return sample_episode(env_id, policy, stochastic=False, seed=seed).states


def build_frame(policy: LoadedPolicy, plane: StatePlane, env_id: str, *, color: str = "region", label: str = "",
                clip_inputs: bool = True, device: str = "cpu", trajectory_seed: int | None = None,
                trajectory: np.ndarray | None = None) -> PlaneFrame:
    """Partition, colour values and overlays of one checkpoint on the plane; for a state-space plane also a
    trajectory: the raw states `trajectory` when given, else the policy's deterministic episode from
    `trajectory_seed` when that is set."""
    part = partition_on_plane(policy, plane, clip_inputs=clip_inputs, device=device)
    traj = target = None
    if plane.kind == "state_space":
        target = target_state(env_id)
        if trajectory is None and trajectory_seed is not None:
            trajectory = deterministic_states(env_id, policy, trajectory_seed)
        if trajectory is not None:
            traj = plane.to_display(trajectory)
    return PlaneFrame(policy, plane, part, color, region_values(policy, part, color), clip_polygon(policy, plane),
                      env_id, label, traj, target)
