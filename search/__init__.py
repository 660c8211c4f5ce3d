"""Hyperparameter sweeps over fer's model families with Ray Tune and Optuna."""
