"""Spiking DQN on Gymnasium: encoder, replay buffer, target update, fast path == the nn
modules, TD targets, bad input, exact resume, and the whole `spinnq run` loop (--quick)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from spinnq.cli import app
from spinnq.errors import CheckpointError, InputError, SettingsError
from spinnq.graph.model import read_graph
from spinnq.resolver import RunSettings
from spinnq.resolver import resolve as resolve_settings
from spinnq.tasks.common import RunDir
from spinnq.tasks.control import fast
from spinnq.tasks.control import model as q_network
from spinnq.tasks.control.dqn import (
    DQNConfig,
    ReplayBuffer,
    average_update,
    hard_update,
    learning_rate,
    random_action,
    td_loss,
    train,
)
from spinnq.tasks.control.encoder import Encoder, EncoderConfig
from spinnq.tasks.control.env import make_env, obs_range, resolve
from spinnq.tasks.control.run import build_agent, default_config, run_control

torch.set_num_threads(1)


# ------------------------------------------------------------------------------- encoder
def test_encoder_counts_are_rounded_rates_and_deterministic():
    enc = Encoder(np.array([-1.0, 0.0]), np.array([1.0, 10.0]), EncoderConfig(8, 1.0, 10))
    obs = np.array([[0.3, 2.0], [-5.0, 99.0]], np.float32)  # second row: clipped
    s = enc(obs)
    assert s.shape == (2, 10, 16) and set(s.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(s, enc(obs))
    many = np.random.default_rng(0).normal(0, 1, (2000, 2)).astype(np.float32)
    assert np.array_equal(enc.numpy(many), enc(many).numpy())  # numpy path (acting) == torch
    r = enc.rates(obs)
    assert torch.equal(s.sum(1), torch.floor(10 * r + 0.5))
    # clipping: out-of-range values give the same spikes as the range's edge
    assert torch.equal(enc(np.array([[-5.0, 99.0]])), enc(np.array([[-1.0, 10.0]])))
    # the neuron whose centre is nearest the value fires every step
    assert s[1, :, 0].sum() == 10 and s[1, :, 15].sum() == 10


def test_encoder_spikes_evenly_spaced():
    enc = Encoder(np.array([0.0]), np.array([1.0]), EncoderConfig(2, 100.0, 10))
    s = enc(np.array([[0.0]]))[0, :, 1]  # wide fields: rate ~ 1 - tiny
    assert s.sum() == 10
    enc2 = Encoder(np.array([0.0]), np.array([1.0]), EncoderConfig(2, 0.5887, 10))
    r = enc2.rates(np.array([[0.0]]))[0, 1].item()  # exp(-0.5/0.5887^2) ~ 0.237
    spikes = enc2(np.array([[0.0]]))[0, :, 1]
    assert spikes.sum() == round(10 * r)
    idx = torch.nonzero(spikes).flatten()
    assert (idx.diff() >= 3).all()  # spread out, not bunched


def test_encoder_bad_input():
    enc = Encoder(np.zeros(4), np.ones(4))
    with pytest.raises(InputError, match="expected"):
        enc(np.zeros((2, 3)))
    with pytest.raises(InputError):
        Encoder(np.zeros(2), np.ones(2), EncoderConfig(steps=0))


# ------------------------------------------------------------------------ replay, target
def test_replay_buffer_wraps_and_samples_stored_transitions():
    buf = ReplayBuffer(5, 2)
    for i in range(7):
        buf.add([i, i], i % 2, float(i), [i + 1, i + 1], i == 6)
    assert buf.size == 5 and buf.pos == 2
    assert sorted(buf.reward.tolist()) == [2.0, 3.0, 4.0, 5.0, 6.0]
    o, a, r, o2, d, disc = buf.sample(50, np.random.default_rng(0))
    assert np.all(disc == np.float32(0.99))
    assert np.all(o[:, 0] == r) and np.all(o2[:, 0] == r + 1) and np.all(a == r % 2)
    assert np.all(d == (r == 6))
    buf2 = ReplayBuffer(5, 2)
    buf2.load_state_dict(buf.state_dict())
    assert np.array_equal(buf2.obs, buf.obs) and buf2.pos == buf.pos
    with pytest.raises(CheckpointError, match="capacity"):
        ReplayBuffer(6, 2).load_state_dict(buf.state_dict())


def _net(n_in=12, hidden=(8, 8), seed=0):
    torch.manual_seed(seed)
    return q_network.build(n_in, 2, q_network.NetConfig(hidden=hidden))


def test_hard_update_copies_online_into_target():
    online, target = _net(seed=0), _net(seed=1)
    assert not torch.equal(online[0].weight, target[0].weight)
    hard_update(target, online)
    for a, b in zip(online.parameters(), target.parameters(), strict=True):
        assert torch.equal(a, b) and a.data_ptr() != b.data_ptr()


def test_td_target_does_not_bootstrap_terminal_states():
    enc = Encoder(np.zeros(3), np.ones(3), EncoderConfig(4, 1.0, 5))
    online = _net()
    target = _net(seed=5)
    o = np.random.default_rng(0).random((6, 3)).astype(np.float32)
    batch = (o, np.zeros(6, np.int64), np.full(6, 2.0, np.float32), o[::-1].copy(),
             np.ones(6, np.float32), np.full(6, 0.99, np.float32))
    q = fast.act_q(online, enc(o))[:, 0]
    for double in (True, False):
        cfg = DQNConfig(double=double, huber_delta=1e9)  # pure 0.5 * MSE
        loss = td_loss(online, target, enc, batch, cfg)
        assert torch.allclose(loss, 0.5 * ((q - 2.0) ** 2).mean(), rtol=1e-5)


# ------------------------------------------------------------------------------ fast path
@pytest.mark.parametrize("quant", [None, "max", "p99"])
def test_fast_path_equals_spiking_sequential_values_and_gradients(quant):
    net = _net(n_in=20, hidden=(16, 12))
    q_network.calibrate_init(net, (torch.rand(64, 6, 20) < 0.3).float(), 0.2)
    if quant:
        net = q_network.quantized(net, quant)
    net = net.double()
    x = (torch.rand(32, 6, 20) < 0.3).double()
    q_ref = net(x)[:, -1]
    q_fast = fast.q_values(net, x)
    assert torch.allclose(q_ref, q_fast, rtol=1e-12, atol=1e-12)
    g_ref = torch.autograd.grad((q_ref ** 2).sum(), list(net.parameters()))
    g_fast = torch.autograd.grad((q_fast ** 2).sum(), list(net.parameters()))
    for a, b in zip(g_ref, g_fast, strict=True):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-12)
    assert torch.allclose(fast.act_q(net.float(), x.float()), net.float()(x.float())[:, -1],
                          atol=1e-4)


def test_n_step_transitions_sum_discounted_rewards(tmp_path):
    """With n_step=3 every stored reward is r_t + g r_t+1 + g^2 r_t+2 (fewer at the episode's
    end) and its discount g^(rewards summed)."""
    spec = resolve("cartpole")
    env = make_env(spec)
    enc = Encoder(*obs_range(spec, env), EncoderConfig(4, 1.0, 4))
    net = _net(n_in=enc.n_inputs, hidden=(8, 8))
    cfg = DQNConfig(total_steps=60, learning_starts=10**6, n_step=3, buffer=100,
                    eval_every=10**6, ckpt_every=10**6, gamma=0.5, reward_scale=1.0)
    (tmp_path / "checkpoints").mkdir()
    import spinnq.tasks.control.dqn as dqn_mod

    seen = {}
    orig = dqn_mod.ReplayBuffer

    class Spy(orig):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            seen["buf"] = self

    dqn_mod.ReplayBuffer = Spy
    try:
        train(net, enc, spec, cfg, seed=1, folder=tmp_path, quiet=True)
    finally:
        dqn_mod.ReplayBuffer = orig
    buf = seen["buf"]
    assert buf.size == 60
    # CartPole pays 1 per step: full windows 1 + .5 + .25, the last two of an episode less
    assert set(np.round(buf.reward[:buf.size], 4)) <= {1.75, 1.5, 1.0}
    np.testing.assert_allclose(buf.discount[buf.reward == 1.75], 0.125)
    np.testing.assert_allclose(buf.discount[buf.reward == 1.0], 0.5)


def test_calibrated_init_makes_hidden_layers_fire():
    net = _net(n_in=40, hidden=(32, 32))
    x = (torch.rand(128, 10, 40) < 0.1).float()
    q_network.calibrate_init(net, x, 0.15)
    h1 = net[1](net[0](x))
    h2 = net[3](net[2](h1))
    assert 0.1 < h1.mean() < 0.2 and 0.1 < h2.mean() < 0.2


# ----------------------------------------------------------------------------- bad input
def test_unknown_and_continuous_environments_are_clear_errors():
    with pytest.raises(InputError, match="unknown environment 'nosuchenv'"):
        resolve("nosuchenv")
    with pytest.raises(InputError, match="continuous action space"):
        make_env(resolve("Pendulum-v1"))
    spec = resolve("cartpole")
    env = make_env(spec)
    low, high = obs_range(spec, env)
    assert np.all(high > low) and np.isfinite(low).all()


def test_cli_bad_input_exit_code_and_message(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(app, ["run", "nosuchtask"])
    assert r.exit_code != 0 and "unknown task" in str(r.exception)
    r = CliRunner().invoke(app, ["run", "Pendulum-v1", "--quick"])
    assert isinstance(r.exception, InputError) and "continuous action space" in str(r.exception)
    r = CliRunner().invoke(app, ["run", "cartpole", "--set", "nonsense"])
    assert isinstance(r.exception, InputError)
    r = CliRunner().invoke(app, ["run", "cartpole", "--quick", "--set", "dqn.nosuch=1"])
    assert isinstance(r.exception, InputError) and "nosuch" in str(r.exception)
    r = CliRunner().invoke(app, ["run", "cartpole", "--quick", "--set", "env=Pendulum-v1"])
    assert isinstance(r.exception, InputError) and "task argument" in str(r.exception)
    r = CliRunner().invoke(app, ["run", "cartpole", "--resume", str(tmp_path)])
    assert isinstance(r.exception, CheckpointError) and "not a spinnq run folder" in str(
        r.exception)
    assert not (tmp_path / "runs").exists()  # refused before any run folder was made


def test_corrupt_checkpoint_on_resume_is_a_clear_error(tmp_path):
    cfg = default_config("cartpole", quick=True)
    run = RunDir.create("cartpole", tmp_path / "D")
    run.save_config(cfg)
    run.release()
    tmp_path = tmp_path / "D"
    (tmp_path / "checkpoints" / "dqn.pt").write_bytes(b"\x80\x02garbage")
    with pytest.raises(CheckpointError, match="dqn.pt"):
        run_control(cfg, resume=tmp_path, quiet=True)


# -------------------------------------------------------------------------------- resume
def _tiny_train(folder, interrupt_at=None, resume=False, zeta=None, lr_end=None, avg=None,
                eval_every=100, keep="best"):
    spec = resolve("cartpole")
    env = make_env(spec)
    enc = Encoder(*obs_range(spec, env), EncoderConfig(4, 1.0, 4))
    net = _net(n_in=enc.n_inputs, hidden=(8, 8), seed=3)
    cfg = DQNConfig(total_steps=260, learning_starts=40, train_freq=4, gradient_steps=2,
                    target_update=5, buffer=500, eval_episodes=2,
                    ckpt_every=30, batch=16, explore_zeta=zeta, explore_max_repeat=6,
                    lr_end=lr_end, average_rate=avg, eval_every=eval_every, keep=keep)
    (folder / "checkpoints").mkdir(parents=True, exist_ok=True)
    res = train(net, enc, spec, cfg, seed=7, folder=folder, quiet=True,
                interrupt_at=interrupt_at, resume=resume)
    return net, res


# before / after several checkpoints (every 30); ez-greedy's held actions, the annealed
# learning rate, the averaged weights and the last-kept model resume too
@pytest.mark.parametrize("k,zeta,lr_end,avg,keep", [
    (47, None, None, None, "best"), (203, None, None, None, "best"),
    (203, 1.5, 1e-4, None, "best"), (203, None, None, 0.05, "best"),
    (203, None, None, 0.05, "last")])
def test_interrupted_training_resumes_to_the_same_weights(tmp_path, k, zeta, lr_end, avg, keep):
    kw = {"zeta": zeta, "lr_end": lr_end, "avg": avg, "keep": keep}
    ref, ref_res = _tiny_train(tmp_path / "a", **kw)
    with pytest.raises(KeyboardInterrupt):
        _tiny_train(tmp_path / "b", interrupt_at=k, **kw)
    assert (tmp_path / "b" / "checkpoints" / "dqn.pt").exists()
    net, res = _tiny_train(tmp_path / "b", resume=True, **kw)
    for a, b in zip(ref.state_dict().values(), net.state_dict().values(), strict=True):
        assert torch.equal(a, b), f"interrupted at step {k}"
    for a, b in zip(ref_res.best_state.values(), res.best_state.values(), strict=True):
        assert torch.equal(a, b), f"kept model, interrupted at step {k}"
    assert res.env_steps == ref_res.env_steps and res.episodes == ref_res.episodes
    assert (tmp_path / "a" / "train.csv").read_text() == (tmp_path / "b" / "train.csv").read_text()


def test_weight_average_moves_toward_the_online_weights_by_its_rate():
    avg, online = _net(n_in=6, hidden=(4,), seed=0), _net(n_in=6, hidden=(4,), seed=1)
    before = [p.clone() for p in avg.parameters()]
    average_update(avg, online, 0.25)
    for a, b, o in zip(avg.parameters(), before, online.parameters(), strict=True):
        assert torch.allclose(a, 0.75 * b + 0.25 * o)


def test_averaged_weights_are_kept_without_changing_training(tmp_path):
    """With `average_rate` the evaluated, kept model is the running average, while the
    online network (acting, learning) trains exactly as without it; rate 1 keeps the online
    weights. One evaluation only, at the end of the budget."""
    plain_net, plain = _tiny_train(tmp_path / "a", eval_every=10_000)
    _, avg = _tiny_train(tmp_path / "b", avg=0.05, eval_every=10_000)
    _, one = _tiny_train(tmp_path / "c", avg=1.0, eval_every=10_000)
    for k, w in plain.final_state.items():
        assert torch.equal(w, avg.final_state[k]) and torch.equal(w, one.final_state[k])
        assert torch.equal(w, plain.best_state[k]) and torch.equal(w, one.best_state[k])
    assert any(not torch.equal(w, avg.best_state[k]) for k, w in plain.final_state.items())


def test_keep_last_keeps_the_network_at_the_last_evaluation_and_best_the_best(tmp_path,
                                                                             monkeypatch):
    """`keep="best"` keeps the best of the greedy evaluations; `keep="last"` the network
    evaluated last (the end of training: the online weights, or with `average_rate` the
    running average), whatever the earlier evaluations scored. The evaluations score a
    scripted sequence whose best is the second (the tiny net does not learn CartPole)."""
    from spinnq.tasks.control import dqn as dqn_module

    def scripted(model, enc, spec, episodes, seed):
        scripted.n += 1
        return np.full(episodes, 30.0 if scripted.n == 2 else 10.0 + scripted.n)

    def run(name, **kw):
        scripted.n = 0
        monkeypatch.setattr(dqn_module, "greedy_eval", scripted)
        return _tiny_train(tmp_path / name, eval_every=50, **kw)[1]

    best, last, last_avg = run("best"), run("last", keep="last"), run("avg", keep="last",
                                                                          avg=0.05)
    assert scripted.n >= 4
    assert (best.best_eval, last.best_eval, last_avg.best_eval) == (30.0, 10.0 + scripted.n,
                                                                    10.0 + scripted.n)
    for k, w in best.final_state.items():
        assert torch.equal(w, last.final_state[k]) and torch.equal(w, last_avg.final_state[k])
        assert torch.equal(w, last.best_state[k])
    assert any(not torch.equal(w, best.best_state[k]) for k, w in best.final_state.items())
    assert any(not torch.equal(w, last_avg.best_state[k]) for k, w in best.final_state.items())


def test_averaged_weights_missing_from_a_checkpoint_are_a_clear_error(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        _tiny_train(tmp_path, interrupt_at=100)
    with pytest.raises(CheckpointError, match="average"):
        _tiny_train(tmp_path, resume=True, avg=0.05)


def test_learning_rate_is_constant_or_annealed_linearly_over_the_budget():
    const = DQNConfig(lr=1e-3, learning_starts=100, total_steps=1_100)
    assert {learning_rate(s, const) for s in (0, 100, 600, 1_100, 5_000)} == {1e-3}
    cfg = DQNConfig(lr=1e-3, lr_end=1e-4, learning_starts=100, total_steps=1_100)
    got = [learning_rate(s, cfg) for s in (0, 100, 600, 1_100, 5_000)]
    assert got == pytest.approx([1e-3, 1e-3, 5.5e-4, 1e-4, 1e-4])


def test_annealed_learning_rate_reaches_the_optimiser(tmp_path):
    """The optimiser steps with the scheduled rate, not the constant one (a spy on
    Adam.step records the rate of every step), falling from `lr` to `lr_end`."""
    from spinnq.tasks.control import dqn as dqn_module

    seen = []
    real = dqn_module.torch.optim.Adam.step

    def spy(self, *a, **k):
        seen.append(self.param_groups[0]["lr"])
        return real(self, *a, **k)

    import unittest.mock as mock
    with mock.patch.object(dqn_module.torch.optim.Adam, "step", spy):
        _tiny_train(tmp_path, lr_end=1e-5)
    cfg = DQNConfig(total_steps=260, learning_starts=40, lr_end=1e-5)
    assert seen[0] == pytest.approx(learning_rate(40, cfg))
    assert seen[-1] == pytest.approx(learning_rate(260, cfg), rel=0.05)
    assert seen == sorted(seen, reverse=True)


def test_plain_exploration_draws_one_action_and_holds_it_one_step():
    """Without `explore_zeta` an exploring decision draws exactly what plain epsilon-greedy
    drew before the option existed (runs without it are unchanged)."""
    rng, ref = np.random.default_rng(5), np.random.default_rng(5)
    got = [random_action(rng, 3, DQNConfig()) for _ in range(200)]
    assert got == [(int(ref.integers(3)), 1) for _ in range(200)]


def test_ez_greedy_holds_actions_for_zeta_distributed_capped_runs():
    cfg = DQNConfig(explore_zeta=1.5, explore_max_repeat=30)
    holds = np.array([random_action(np.random.default_rng(i), 3, cfg)[1] for i in range(3000)])
    assert holds.min() == 1 and holds.max() == 30
    # zeta(1.5): P(1) = 1 / zeta(1.5) = 0.383, P(n >= 30) = 0.141 (capped here)
    assert abs((holds == 1).mean() - 0.383) < 0.03
    assert abs((holds == 30).mean() - 0.141) < 0.03


def test_ez_greedy_finds_mountaincars_goal_where_plain_exploration_does_not():
    """Why MountainCar explores with `explore_zeta`: with random actions alone (epsilon = 1),
    held actions build the swing that reaches the flag; one-step random actions do not."""
    import gymnasium as gym

    def goals(cfg, steps=6_000):
        env, rng, hold, a, n = gym.make("MountainCar-v0"), np.random.default_rng(0), 0, 0, 0
        env.reset(seed=0)
        for _ in range(steps):
            if hold == 0:
                a, hold = random_action(rng, 3, cfg)
            hold -= 1
            _, _, term, trunc, _ = env.step(a)
            n += term
            if term or trunc:
                env.reset()
                hold = 0
        return n

    assert goals(DQNConfig()) == 0
    assert goals(DQNConfig(explore_zeta=1.5, explore_max_repeat=30)) >= 2


# ------------------------------------------------------------------- the loop, --quick
def _strip_timing(rep: dict) -> dict:
    drop = {"created", "wall_s", "baselines", "ratios", "run_dir"}
    out = {k: v for k, v in rep.items() if k not in drop}
    out["stages"] = [{k: v for k, v in s.items() if k != "wall_s"} for s in rep["stages"]]
    out["training"] = {k: v for k, v in rep["training"].items() if k != "wall_s"}
    return out


def test_quick_run_end_to_end_resume_and_same_report(tmp_path):
    """`spinnq run cartpole --quick` writes a full run folder; an interrupted run resumed
    gives the same report.json (timings aside) as an uninterrupted one."""
    r = CliRunner().invoke(app, ["run", "cartpole", "--quick", "--quiet", "--out",
                                 str(tmp_path / "a")])
    assert r.exit_code == 0, r.output + repr(r.exception)
    rep = json.loads((tmp_path / "a" / "report.json").read_text())
    names = [s["name"] for s in rep["stages"]]
    assert names == ["float", "PTQ", "QAT", "chip", "chip PTQ"]
    chip = rep["stages"][3]
    assert chip["episodes"] == 3 and 0 <= chip["actions_equal_float"] <= 1
    assert rep["chip"]["kind"] == "modelled" and rep["chip"]["pes"] >= 3
    assert rep["baselines"][0]["kind"] == "measured"
    for f in ("float.nir", "ptq.nir", "qat.nir", "report.md", "report.html", "train.csv",
              "eval.csv", "checkpoints/dqn.pt", "chip_input.npy"):
        assert (tmp_path / "a" / f).exists(), f
    cfg = default_config("cartpole", quick=True)
    # the chip stages ran with what the resolver gives the written graphs (as `spinnq
    # evaluate/deploy/energy` would), and `spinnq energy` on qat.nir prices the same run
    for name, f in (("chip", "qat.nir"), ("chip PTQ", "ptq.nir")):
        want = resolve_settings(read_graph(tmp_path / "a" / f),
                                operating_point=cfg.operating_point, tick_s=cfg.tick_s)
        assert rep["settings"][name] == want.to_dict()
    rs = RunSettings(**rep["settings"]["chip"])
    assert rs.graph_scales and rs.reset == "subtract"
    r = CliRunner().invoke(app, ["energy", str(tmp_path / "a" / "qat.nir"), "--input",
                                 str(tmp_path / "a" / "chip_input.npy"), "--json",
                                 str(tmp_path / "e.json"), "--operating-point",
                                 cfg.operating_point, "--tick-ms", repr(cfg.tick_s * 1e3)])
    assert r.exit_code == 0, r.output
    e = json.loads((tmp_path / "e.json").read_text())
    assert e["settings"] == rep["settings"]["chip"]
    assert e["energy_j"] == pytest.approx(rep["chip"]["energy_j"], rel=1e-12)
    with pytest.raises(KeyboardInterrupt):
        run_control(cfg, out=tmp_path / "b", quiet=True, interrupt_at=333)
    assert not (tmp_path / "b" / "report.json").exists()
    run_control(cfg, resume=tmp_path / "b", quiet=True)
    rep_b = json.loads((tmp_path / "b" / "report.json").read_text())
    assert _strip_timing(rep_b) == _strip_timing(rep)


def test_calibration_states_come_from_calib_episodes_capped_by_calib_states(tmp_path):
    """More greedy episodes give QAT more visited states (the report says how many), up to
    `calib_states`; the count survives a resume that reuses quant.pt."""
    def states(name, **kw):
        cfg = default_config("cartpole", quick=True, stages=("float", "chip"), **kw)
        q = run_control(cfg, out=tmp_path / name, quiet=True)["quantization"]
        assert q["calibration_episodes"] == cfg.finetune.calib_episodes
        return q["calibration_states"]

    few = states("few", **{"finetune.calib_episodes": 2, "finetune.calib_states": 100_000})
    more = states("more", **{"finetune.calib_episodes": 6, "finetune.calib_states": 100_000})
    capped = states("cap", **{"finetune.calib_episodes": 6, "finetune.calib_states": 40})
    assert 2 * 8 <= few < more and capped == 40  # CartPole episodes last >= 8 steps
    again = run_control(None, resume=tmp_path / "more", quiet=True)["quantization"]
    assert again["calibration_states"] == more


# --------------------------------------------------------------------- chip == QAT model
def test_chip_q_values_come_from_the_emulated_program_and_match_qat():
    """The chip stage's Q-values are the emulator's: they equal the QAT network's (same
    integers, thresholds scaled) and move when the program's integer weights change."""
    from spinnq.graph.model import from_nir
    from spinnq.s2 import S2Config, compile
    from spinnq.tasks.control.evaluate import chip_q, sim_q

    enc = Encoder(np.zeros(4), np.ones(4), EncoderConfig(8, 1.0, 10))
    net = _net(n_in=enc.n_inputs, hidden=(24, 16), seed=2)
    obs = np.random.default_rng(1).random((64, 4)).astype(np.float32)
    q_network.calibrate_init(net, enc(obs), 0.2)
    q = q_network.quantized(net, "p99.9")
    g = from_nir(q_network.export(q, enc.n_inputs, 1e-4))
    prog = compile(g, S2Config(reset="subtract", graph_scales=True))
    assert prog.depth == 3
    q_chip = chip_q(prog, enc)(obs)
    q_sim = sim_q(g, enc, 1e-4)(obs)
    q_torch = fast.act_q(q, enc(obs)).numpy()
    np.testing.assert_allclose(q_chip, q_sim, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(q_chip, q_torch, rtol=1e-4, atol=1e-4)
    prog.projections[-1].weight = -prog.projections[-1].weight
    assert np.allclose(chip_q(prog, enc)(obs), -q_chip, rtol=1e-4, atol=1e-4)


def test_quick_run_at_4_bits_reports_the_4_bit_chip_stages(tmp_path):
    """`spinnq run cartpole --quick --set bits=4`: the 8-bit stages and, beside them, PTQ-4
    and QAT-4 on the chip; the written QAT-4 graph says 4 bits, so run with no flags (the
    resolver reads its metadata) it compiles to 4-bit integers and replays the stage."""
    from spinnq.graph.model import read_graph
    from spinnq.resolver import resolve as resolve_settings
    from spinnq.s2 import compile
    from spinnq.s2.formats import qmax
    from spinnq.tasks.control.evaluate import chip_q, evaluate, sim_q

    r = CliRunner().invoke(app, ["run", "cartpole", "--quick", "--quiet", "--out",
                                 str(tmp_path / "a"), "--set", "bits=4"])
    assert r.exit_code == 0, r.output + repr(r.exception)
    rep = json.loads((tmp_path / "a" / "report.json").read_text())
    by = {s["name"]: s for s in rep["stages"]}
    assert list(by) == ["float", "PTQ", "QAT", "chip", "chip PTQ", "chip PTQ-4", "chip QAT-4"]
    assert rep["quantization"]["bits4"]["ptq_scale_mode"] in ("max", "p99")
    g = read_graph(tmp_path / "a" / "qat4.nir")
    assert g.metadata["spinnq.bits"] == 4
    rs = resolve_settings(g)
    assert rs.bits == 4 and rs.graph_scales
    prog = compile(g, rs.s2())
    assert {p.bits for p in prog.projections} == {4}
    assert max(int(np.abs(p.weight).max()) for p in prog.projections) <= qmax(4) < qmax(8)
    cfg = default_config("cartpole", quick=True, sets={"bits": "4"})
    _, enc, _, _ = build_agent(cfg)
    again = evaluate("chip QAT-4", chip_q(prog, enc), resolve(cfg.env), cfg.eval_episodes,
                     cfg.eval_seed, reference=sim_q(read_graph(tmp_path / "a" / "float.nir"),
                                                    enc, cfg.dt)).row()
    assert again["mean_return"] == by["chip QAT-4"]["mean_return"]
    assert again["actions_equal_float"] == by["chip QAT-4"]["actions_equal_float"]


def test_bits_other_than_8_or_4_and_4_bit_stages_at_8_bits_are_refused(tmp_path):
    with pytest.raises(InputError, match="bits"):
        default_config("cartpole", quick=True, sets={"bits": "5"})
    cfg = default_config("cartpole", quick=True, sets={"stages": "chip,chip QAT-4"})
    with pytest.raises(InputError, match="chip QAT-4 need bits=4"):
        run_control(cfg, out=tmp_path / "run", quiet=True)
    assert not (tmp_path / "run").exists()


def test_environment_defaults_per_task_and_overrides_win():
    """MountainCar's measured defaults (32 fields per dimension, 5-step returns, rl-zoo's 10k
    buffer) are its own; other tasks keep theirs; --quick and --set still override them."""
    mc = default_config("mountaincar")
    assert mc.encoder.neurons_per_dim == 32
    assert (mc.dqn.n_step, mc.dqn.buffer, mc.dqn.gamma) == (5, 10_000, 0.98)
    assert default_config("MountainCar-v0").encoder.neurons_per_dim == 32
    assert default_config("cartpole").encoder.neurons_per_dim == 16
    assert default_config("cartpole").dqn.n_step == 3
    assert default_config("acrobot").dqn.average_rate == 0.005
    assert default_config("cartpole").dqn.average_rate is None
    assert default_config("acrobot", sets={"dqn.average_rate": "none"}).dqn.average_rate is None
    assert (default_config("acrobot").dqn.keep, default_config("cartpole").dqn.keep) == (
        "last", "best")
    assert default_config("acrobot", sets={"dqn.keep": "best"}).dqn.keep == "best"
    with pytest.raises(SettingsError, match="keep"):
        default_config("acrobot", sets={"dqn.keep": "worst"})
    ll = default_config("lunarlander")
    assert ll.dqn.total_steps == 150_000
    assert (ll.finetune.advantage_weight, ll.finetune.qat_epochs) == (30.0, 16)
    assert default_config("cartpole").finetune.calib_episodes == 8
    ac = default_config("acrobot").finetune
    assert (ac.calib_episodes, ac.advantage_weight, ac.qat_lr, ac.qat_epochs) == (48, 30.0,
                                                                                  0.02, 16)
    assert default_config("cartpole").finetune.advantage_weight == 10.0
    assert default_config("lunarlander", quick=True).finetune.qat_epochs == 1
    assert default_config("mountaincar", quick=True).encoder.neurons_per_dim == 6
    sets = {"encoder.neurons_per_dim": "8", "dqn.n_step": "2"}
    mc8 = default_config("mountaincar", sets=sets)
    assert (mc8.encoder.neurons_per_dim, mc8.dqn.n_step) == (8, 2)
