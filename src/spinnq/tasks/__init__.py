"""Task pipelines that train a network and take it through NIR to the chip report.

- `spinnq.tasks.common`: run folders, seeding, atomic files, checkpoints (weights_only),
  CSV/TensorBoard logs, progress bars: shared by every task.
- `spinnq.tasks.control`: spiking Q-networks on Gymnasium (`spinnq run cartpole|acrobot`).
- `spinnq.tasks.gesture`: DVS gesture recognition (`spinnq run gesture`).
"""
