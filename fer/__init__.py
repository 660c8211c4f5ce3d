"""FER2013 facial-expression classifiers: data, models, training, evaluation, checkpoints."""
__version__ = "0.1.0"
