"""The training engine behind :mod:`core.train` (its public face), split into small modules:

``types`` (settings and records), ``schedule`` (poly LR, the fixed validation split),
``dist`` (torchrun / DDP), ``data`` (per-step batches, cached features), ``state`` (resume
checkpoints), ``loop`` (the step, the guards, the generator) and ``finetune``.
"""
