"""Training and evaluation: a procedural dataset, the fine-tuning loop (torchrun/DDP), evaluation, the demo model.

The last stage of the pipeline: it imports reduce/ (models, schedules, GMACs), never the other way round.
"""
