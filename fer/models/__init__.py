"""Model registry: `create_model("seed_cnn")`, `create_model("cnn", channels=[...])`."""
from fer.models import cnn, dnn, ensemble  # noqa: F401  (registers the families)
from fer.models.cnn import CNNConfig
from fer.models.dnn import DNNConfig
from fer.models.registry import create_model, list_models, model_from_spec, resolve
from fer.models.summary import count_params, spec_params, summary

__all__ = ["create_model", "model_from_spec", "list_models", "resolve", "CNNConfig", "DNNConfig",
           "summary", "count_params", "spec_params"]
