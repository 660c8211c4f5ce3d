"""From trained checkpoints to a model a user ships: pick (ensemble), retrain on every selectable
row (refit), measure (cost), and write a graph that needs no fer code (export, quantize)."""
