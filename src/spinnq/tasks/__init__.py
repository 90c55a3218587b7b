"""Task pipelines that train a network and take it through NIR to the chip report.

- `spinnq.tasks.common`: run folders, RNG states, atomic files, checkpoints (weights_only),
  CSV/TensorBoard logs: shared by every task (progress bars and seeding: `spinnq.helpers`).
- `spinnq.tasks.control`: spiking Q-networks on Gymnasium (`spinnq run cartpole|acrobot`).
- `spinnq.tasks.gesture`: DVS gesture recognition (`spinnq run gesture`).
"""
