"""Stable-Baselines3 files (models/sb3.py, utils/analysis/imported.py, import_policy.py): exactness against SB3's
own answers stored by tests/fixtures/make_sb3_fixtures.py, the restricted unpickler, and every bad input.

The SB3 1.x + gym 0.21 statistics file (vecnormalize_sb3v1.pkl) cannot be written by an installed stack any
more: the fixture script writes it opcode by opcode (`sb3v1_vecnormalize_bytes`: GLOBAL gym.spaces.box Box,
numpy.core.multiarray _reconstruct, NEWOBJ + BUILD state dicts, protocol 3), as pickle.dump did there.
"""
from __future__ import annotations

import io
import json
import pickle
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from models.checkpoint import imported_checkpoint_payload, load_checkpoint, save_checkpoint
from models.sb3 import load_statistics_file, read_sb3_policy, read_vecnormalize
from utils.analysis.imported import read_import_source
from utils.errors import UserError
from utils.analysis.metrics import trajectory_metrics
from utils.analysis.trajectories import sample_episode

F = Path(__file__).resolve().parent / "fixtures" / "sb3"
PAPER = F / "paper_run" / "regions_paper01"
MODELS = {"ppo_separate": "ppo_separate_vecnormalize.pkl", "ppo_list": None,
          "ppo_shared_sb3v1": "ppo_separate_vecnormalize.pkl", "a2c": "a2c_vecnormalize.pkl", "sac": None, "td3": None}


def loaded(name: str):
    policy = read_sb3_policy(F / f"{name}.zip")
    stats = MODELS[name]
    return policy.with_statistics(read_vecnormalize(F / stats)) if stats else policy


def patterns(policy, states: np.ndarray) -> np.ndarray:
    h, out = policy.normalize(states), []
    for W, b in policy.hidden_layers:
        z = h @ W.numpy().T + b.numpy()
        out.append(z > 0)
        h = np.maximum(z, 0.0)
    return np.concatenate(out, axis=1)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_actions_and_patterns_equal_sb3s(name):
    expected = np.load(F / f"{name}_expected.npz")
    policy = loaded(name)
    states = expected["states"]
    assert states.shape[0] == 1000
    np.testing.assert_allclose(policy.normalize(states), expected["obs"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(policy.action_mean(states), expected["actions"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(policy.action_mean(states), expected["actions_f32"], rtol=0, atol=1e-6)
    assert np.array_equal(patterns(policy, states), expected["patterns"])
    assert expected["patterns"].any() and not expected["patterns"].all()  # the states cross region boundaries


def test_algorithms_and_squash():
    assert {n: read_sb3_policy(F / f"{n}.zip").config["algorithm"] for n in MODELS} == {
        "ppo_separate": "PPO", "ppo_list": "PPO", "ppo_shared_sb3v1": "PPO", "a2c": "A2C", "sac": "SAC", "td3": "TD3"}
    sac, td3, ppo = (read_sb3_policy(F / f"{n}.zip") for n in ("sac", "td3", "ppo_separate"))
    assert (sac.squash, td3.squash, ppo.squash) == ("tanh", "tanh", None)
    assert list(td3.action_low) == [-2.0] and list(td3.action_high) == [2.0]
    assert sac.log_std_net is not None and td3.log_std_net is None
    assert torch.isinf(td3.log_std).all()  # TD3 acts deterministically: its stochastic episodes are the same


def test_sb3v1_statistics_opcode_fixture():
    stats = read_vecnormalize(F / "vecnormalize_sb3v1.pkl")
    expected = np.load(F / "vecnormalize_sb3v1_expected.npz")
    np.testing.assert_array_equal(stats.obs_mean, expected["mean"])
    np.testing.assert_array_equal(stats.obs_var, expected["var"])
    assert (stats.clip_obs, stats.epsilon, stats.obs_norm_enabled) == (5.0, 1e-6, True)
    policy = read_sb3_policy(F / "ppo_list.zip").with_statistics(stats)
    s = np.array([[1e6, 0.3], [expected["mean"][0], 1.0]])
    x = policy.normalize(s)
    assert x[0, 0] == 5.0  # SB3's own clip_obs, not ours
    np.testing.assert_allclose(x[1], [0.0, (1.0 - expected["mean"][1]) / np.sqrt(expected["var"][1] + 1e-6)])


@pytest.mark.parametrize("name, env_id", [("ppo_separate", "Car1DEnv-v1"), ("sac", "Pendulum-v1"),
                                          ("td3", "Pendulum-v1")])
def test_region_counts_equal_the_native_checkpoint(tmp_path, name, env_id):
    policy = loaded(name)
    path = tmp_path / f"{name}.pt"
    save_checkpoint(path, imported_checkpoint_payload(policy, iteration=0, config={"policy_dims": [8, 8]}))
    native = load_checkpoint(path)
    assert native.weights_digest == policy.weights_digest
    assert (native.squash, native.clip_obs, native.epsilon) == (policy.squash, policy.clip_obs, policy.epsilon)
    episodes = [sample_episode(env_id, p, stochastic=True, seed=1, max_steps=150) for p in (policy, native)]
    np.testing.assert_array_equal(episodes[0].states, episodes[1].states)
    metrics = [trajectory_metrics(p, episodes[0].states, "stochastic", "fixed") for p in (policy, native)]
    assert metrics[0] == metrics[1]
    assert metrics[0]["num_regions_stochastic_fixed"] >= 1


def test_malicious_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    bad = tmp_path / "evil_stats.pth"
    bad.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(UserError, match=r"refusing to load .*references io\.open"):
        read_vecnormalize(bad)
    assert not marker.exists()
    # _codecs.encode is allowed for numpy's latin-1 array bytes only: another codec (zlib, ...) is refused
    import codecs

    class Packed:
        def __reduce__(self):
            return (codecs.encode, (b"x" * 10, "zlib_codec"))

    zipped = tmp_path / "zlib_stats.pth"
    zipped.write_bytes(pickle.dumps(Packed()))
    with pytest.raises(UserError, match=r"refusing to load .*_codecs\.encode with"):
        read_vecnormalize(zipped)


def _write_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, payload in members.items():
            z.writestr(name, payload)
    return path


def _edited(tmp_path: Path, name: str, edit) -> Path:
    with zipfile.ZipFile(F / f"{name}.zip") as z:
        members = {n: z.read(n) for n in z.namelist()}
    data = json.loads(members["data"])
    edit(data)
    members["data"] = json.dumps(data).encode()
    return _write_zip(tmp_path / f"edited_{len(list(tmp_path.glob('edited_*')))}_{name}.zip", members)


def _bad_inputs(tmp_path: Path) -> dict[str, tuple[Path, Path | None, str]]:
    """name -> (model or folder, stats or None, a part of the one-line message)."""
    full = (F / "ppo_separate.zip").read_bytes()
    with zipfile.ZipFile(F / "ppo_separate.zip") as z:
        no_weights = {n: z.read(n) for n in z.namelist() if n != "policy.pth"}
    wrong_size = tmp_path / "stats3.pkl"
    wrong_size.write_bytes(_pendulum_stats())
    paper_no_best = tmp_path / "run_no_best"
    shutil.copytree(PAPER, paper_no_best)
    (paper_no_best / "best.zip").unlink()
    not_stats = tmp_path / "list.pkl"
    not_stats.write_bytes(pickle.dumps([1, 2, 3]))
    (tmp_path / "truncated.zip").write_bytes(full[: len(full) // 2])
    return {
        "not an SB3 zip": (_write_zip(tmp_path / "other.zip", {"hello.txt": b"hi"}), None, "not a Stable-Baselines3 model"),
        "no policy.pth": (_write_zip(tmp_path / "noweights.zip", no_weights), None, "has no policy.pth"),
        "truncated zip": (tmp_path / "truncated.zip", None, "truncated"),
        "Tanh": (F / "ppo_tanh.zip", None, "is a Tanh policy"),
        "CNN": (_edited(tmp_path, "ppo_list", lambda d: d["policy_class"].update(
            __init__="<function ActorCriticCnnPolicy.__init__ at 0x0>")), None, "CNN policy"),
        "dict observations": (_edited(tmp_path, "sac", lambda d: d["observation_space"].update(
            {":type:": "<class 'gymnasium.spaces.dict.Dict'>"})), None, "dict-observation policy"),
        "unknown algorithm": (_edited(tmp_path, "ppo_list", lambda d: d["policy_class"].update(
            __module__="sb3_contrib.tqc.policies")), None, "cannot read"),
        "statistics of another size": (F / "ppo_separate.zip", wrong_size, "are for 3 observations"),
        "not a VecNormalize pickle": (F / "ppo_separate.zip", not_stats, "not a VecNormalize statistics file"),
        "outside the allow-list": (F / "ppo_separate.zip", _evil(tmp_path), "refusing to load"),
        "paper run without best.zip": (paper_no_best, None, "has no best.zip"),
    }


def _pendulum_stats() -> bytes:
    from tests.fixtures.make_sb3_fixtures import sb3v1_vecnormalize_bytes
    return sb3v1_vecnormalize_bytes(np.zeros(3), np.ones(3), 10.0, obs_low=-np.ones(3), obs_high=np.ones(3))


def _evil(tmp_path: Path) -> Path:
    path = tmp_path / "evil.pkl"
    path.write_bytes(b"\x80\x03cposix\nsystem\nX\x05\x00\x00\x00touch\x85R.")
    return path


BAD = ["not an SB3 zip", "no policy.pth", "truncated zip", "Tanh", "CNN", "dict observations", "unknown algorithm",
       "statistics of another size", "not a VecNormalize pickle", "outside the allow-list",
       "paper run without best.zip"]


@pytest.mark.parametrize("case", BAD)
def test_bad_input_is_one_line_and_changes_nothing(tmp_path, case, capsys):
    import import_policy
    model, stats, message = _bad_inputs(tmp_path)[case]
    store = tmp_path / "store"
    before = sorted(p.name for p in tmp_path.rglob("*"))
    argv = [f"--path={model}", "--env=envs:Car1DEnv-v1", f"--checkpoints_dir={store}"]
    if stats is not None:
        argv.append(f"--stats_path={stats}")
    from utils.errors import run_cli
    with pytest.raises(SystemExit) as ended:
        run_cli(import_policy.main, argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert ended.value.code == 2
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert sorted(p.name for p in tmp_path.rglob("*")) == before and not store.exists()


def test_paper_run_skips_bad_iteration_folders(tmp_path):
    root = tmp_path / "regions_x"
    shutil.copytree(PAPER, root)
    (root / "3").mkdir()                     # empty
    (root / "notes").mkdir()                 # not numeric
    notices = []
    source = read_import_source(root, None, notices.append)
    assert [it for it, _ in source.checkpoints] == [0, 5, 10]  # numeric order, 10 after 5
    assert len(notices) == 2 and any("3" in n and "skipped" in n for n in notices)
    assert any("notes" in n and "not an iteration folder" in n for n in notices)


def test_statistics_file_kinds():
    assert load_statistics_file(PAPER / "best_stats.pth").obs_mean.shape == (2,)
    with pytest.raises(UserError, match="is an SB3 model, not statistics"):
        load_statistics_file(PAPER / "best.zip")


@pytest.mark.slow
def test_paper_commands_end_to_end(tmp_path, monkeypatch, capsys):
    """visualize_hd.py on RUN/best.zip + best_stats.pth, evaluate.py on the paper layout, import_policy.py + runs.py."""
    import evaluate
    import import_policy
    import visualize_hd
    monkeypatch.chdir(tmp_path)
    shutil.copytree(F / "paper_run", tmp_path / "ckpt")
    assert visualize_hd.main(["--env=envs:Car1DEnv-v1", f"--policy_path={PAPER}/best.zip",
                              f"--stats_path={PAPER}/best_stats.pth", "--save_path=plots"]) == 0
    assert list((tmp_path / "plots").glob("*.png"))
    argv = ["--run_id=paper01", "--project_name=regions", "--checkpoints_dir=ckpt", "--env=envs:Car1DEnv-v1",
            "--wandb_mode=disabled", "--quiet"]
    assert evaluate.main(argv) == 0
    rows = (tmp_path / "results/paper01/paper01/history.csv").read_text().splitlines()
    assert len(rows) == 1 + 3  # header + iterations 0, 5, 10
    assert import_policy.main(["--path=ckpt/regions_paper01", "--env=envs:Car1DEnv-v1", "--checkpoints_dir=store",
                               "--run_id=imp", "--sweep_id=paper"]) == 0
    assert evaluate.main(["--sweep_id=paper", "--checkpoints_dir=store", "--wandb_mode=disabled", "--quiet"]) == 0
    assert (tmp_path / "results/paper/sweep.csv").is_file()
    info = json.loads((tmp_path / "store/imp/run.json").read_text())
    assert info["source"]["kind"] == "paper-run" and info["status"] == "finished"


@pytest.mark.slow
def test_the_papers_halfcheetah_command_draws_its_files(tmp_path, capfd):
    """The paper's README line: `--env=HalfCheetah-v2 --policy_path=RUN/best.zip --stats_path=RUN/best_stats.pth`
    on SB3 files of a HalfCheetah policy; the picture's region count is the partition of the loaded policy."""
    import visualize_hd
    from utils.jobs.visualize import plan_job
    from utils.settings import VisualizeSettings

    cheetah = F / "cheetah"
    argv = ["--env=HalfCheetah-v2", f"--policy_path={cheetah}/best.zip", f"--stats_path={cheetah}/best_stats.pth",
            f"--save_path={tmp_path / 'plots'}", "--num_episodes=2", "--quiet"]
    assert visualize_hd.main(argv) == 0
    out, err = capfd.readouterr()
    assert "HalfCheetah-v5" in err  # the legacy id resolves to the maintained one, with a notice
    (png,) = (tmp_path / "plots").glob("*.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    drawn = int(out.rsplit("regions:", 1)[1].split()[0])
    job = plan_job(VisualizeSettings(env="HalfCheetah-v2", policy_path=str(cheetah / "best.zip"),
                                     stats_path=str(cheetah / "best_stats.pth"), save_path=tmp_path, quiet=True,
                                     num_episodes=2))
    policy = job.series[0].policies[0]
    assert policy.obs_dim == 17 and policy.widths == (8, 8)
    from utils.pictures.state_planes import build_frame
    assert drawn == build_frame(policy, job.plane, job.env_id, color="region").partition.num_regions > 1


@pytest.mark.slow
def test_live_sb3_model_matches(tmp_path):
    """Regenerate a model with the installed SB3 and compare live (skipped where SB3 is absent, as in CI)."""
    sb3 = pytest.importorskip("stable_baselines3")
    from envs.car1d import register_car1d
    import gymnasium as gym
    register_car1d()
    model = sb3.PPO("MlpPolicy", gym.make("Car1DEnv-v1"), seed=3, device="cpu", n_steps=64, batch_size=64,
                    policy_kwargs={"net_arch": dict(pi=[8, 8], vf=[8]), "activation_fn": torch.nn.ReLU})
    model.learn(64)
    model.save(tmp_path / "m.zip")
    policy = read_sb3_policy(tmp_path / "m.zip")
    states = np.random.default_rng(0).uniform([-50, -20], [150, 20], size=(1000, 2))
    with torch.no_grad():
        expected = model.policy._predict(torch.as_tensor(states, dtype=torch.float32), deterministic=True).numpy()
    np.testing.assert_allclose(policy.action_mean(states), expected, rtol=0, atol=1e-5 * max(1, np.abs(expected).max()))


def test_batched_episodes_of_sb3_policies_equal_one_at_a_time():
    """sample_episodes (lockstep, used by evaluate.py) gives SB3 policies of every kind the states that
    sample_episode gives them alone: squashing SAC/TD3 actors act through their own actor, PPO through the
    stacked forward pass, side by side in one batch."""
    from utils.analysis.trajectories import EpisodeRequest, sample_episodes

    sac, td3 = read_sb3_policy(F / "sac.zip"), read_sb3_policy(F / "td3.zip")
    requests = [EpisodeRequest(sac, False, 1), EpisodeRequest(sac, True, 2), EpisodeRequest(td3, True, 3),
                EpisodeRequest(td3, False, 4)]
    batched = sample_episodes("Pendulum-v1", requests, max_steps=60)
    for request, episode in zip(requests, batched):
        alone = sample_episode("Pendulum-v1", request.policy, stochastic=request.stochastic, seed=request.seed,
                               max_steps=60)
        np.testing.assert_array_equal(episode.states, alone.states)
        np.testing.assert_array_equal(episode.actions, alone.actions)
    ppo = read_sb3_policy(F / "ppo_separate.zip").with_statistics(
        read_vecnormalize(F / "ppo_separate_vecnormalize.pkl"))
    car = [EpisodeRequest(ppo, True, 5), EpisodeRequest(ppo, False, 6)]
    for request, episode in zip(car, sample_episodes("Car1DEnv-v1", car, max_steps=80)):
        alone = sample_episode("Car1DEnv-v1", ppo, stochastic=request.stochastic, seed=request.seed, max_steps=80)
        np.testing.assert_array_equal(episode.states, alone.states)


ZOO_ARGS = """!!python/object/apply:collections.OrderedDict
- - - algo
    - ppo
  - - env
    - {env}
  - - n_timesteps
    - 256
"""


def test_an_rl_zoo3_folder_imports_with_its_env_from_args_yml(tmp_path):
    """rl-zoo3's layout: <env>.zip + <env>/vecnormalize.pkl + <env>/args.yml (an OrderedDict tag, read without
    importing anything); the env comes from args.yml, and an env that would import a module needs --env."""
    import import_policy

    folder = tmp_path / "logs" / "ppo" / "Car1DEnv-v1_1"
    (folder / "Car1DEnv-v1").mkdir(parents=True)
    shutil.copyfile(F / "ppo_separate.zip", folder / "Car1DEnv-v1.zip")
    shutil.copyfile(F / "ppo_separate_vecnormalize.pkl", folder / "Car1DEnv-v1" / "vecnormalize.pkl")
    (folder / "Car1DEnv-v1" / "args.yml").write_text(ZOO_ARGS.format(env="Car1DEnv-v1"))
    assert import_policy.main([f"--path={folder}", f"--checkpoints_dir={tmp_path / 'store'}", "--run_id=zoo"]) == 0
    info = json.loads((tmp_path / "store" / "zoo" / "run.json").read_text())
    assert info["env_id"] == "Car1DEnv-v1" and info["source"]["kind"] == "rl-zoo3" and info["status"] == "finished"
    imported = load_checkpoint(tmp_path / "store" / "zoo" / "best.pt")
    expected = np.load(F / "ppo_separate_expected.npz")
    np.testing.assert_allclose(imported.action_mean(expected["states"][:50]), expected["actions"][:50], atol=1e-6)

    (folder / "Car1DEnv-v1" / "args.yml").write_text(ZOO_ARGS.format(env="evil_module:Car1DEnv-v1"))
    before = sorted(p.name for p in (tmp_path / "store").iterdir())
    with pytest.raises(UserError, match="would import a module"):
        import_policy.main([f"--path={folder}", f"--checkpoints_dir={tmp_path / 'store'}", "--run_id=zoo2"])
    assert sorted(p.name for p in (tmp_path / "store").iterdir()) == before
