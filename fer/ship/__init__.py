"""From trained checkpoints to a model a user ships: pick (ensemble), retrain on every selectable
row (refit), teach one model what several know (distill), measure (cost), and write a graph that
needs no fer code (export, quantize)."""
