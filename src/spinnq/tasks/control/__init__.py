"""Spiking Q-networks on Gymnasium control tasks: encode observations into spikes, train with
DQN, quantise (PTQ, QAT), run in closed loop on the emulated SpiNNaker2 (`spinnq run
cartpole`). Modules: env, encoder, model, fast (training fast path), dqn, finetune,
evaluate, run (orchestration and report), cli (the `spinnq run` entry)."""
