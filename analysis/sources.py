"""What a report is about: the models (one checkpoint, or the best of each family in an
experiment folder) and the images they are judged on."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from fer.checkpoint import Checkpoint
from fer.data import CLASSES, FaceSet, load_data, split_for_training
from fer.data.splits import refuse_seen_split
from fer.errors import FerError
from fer.models import count_params
from fer.remote import location
from fer.transforms import centre_crop, normalize

if TYPE_CHECKING:  # (fer.checkpoint imports this module)
    from fer.checkpoint import Preprocessing


@dataclass
class ModelSource:
    name: str
    family: str
    path: str
    ckpt: Checkpoint
    faces: FaceSet
    split_name: str
    source_label: str
    preds: np.ndarray | None = None
    raw_probs: np.ndarray | None = None  # (N, 7) before any prior correction

    @property
    def model(self) -> torch.nn.Module:
        return self.ckpt.model

    @property
    def prep(self) -> Preprocessing:
        return self.ckpt.prep

    @property
    def num_params(self) -> int:
        return count_params(self.model)["trainable"]


@dataclass
class Source:
    models: list[ModelSource]
    best: list[dict] = field(default_factory=list)  # search's best trials, for an experiment
    table: pd.DataFrame | None = None
    infos: dict = field(default_factory=dict)
    studies: dict = field(default_factory=dict)  # experiment -> its Optuna study (None: not stored, or not read)
    study_servers: dict = field(default_factory=dict)  # experiment -> the server its study is on, left unopened
    trial_curves: dict = field(default_factory=dict)  # family -> {trial_id: DataFrame}
    metric: str = "val_acc"


def resolve_source(source: str, data: str | None, split: str | None, study_storage: str | None = None) -> Source:
    """A checkpoint (file or run folder) or an experiment, each local or at a storage URI."""
    path = location(source)
    if not path.exists():
        raise FerError(f"{source}: no such checkpoint or experiment folder")
    if path.is_file() or (path / "checkpoint.pt").exists():
        return Source(models=[_model_source("model", str(path), data, split, {})])
    from search.results import best_trials, find_experiments, load_study, study_location, trial_histories, trials_table
    from search.study import mask_passwords

    best = best_trials(path)
    cache: dict = {}
    models = [_model_source(f"best {b['family']}", b["checkpoint"], data, split, cache) for b in best]
    infos, curves, studies, servers = {}, {}, {}, {}
    for exp in find_experiments(path):
        info, hist = trial_histories(exp)
        infos[exp.name], studies[exp.name] = info, load_study(exp, info, study_storage)
        _, server = study_location(exp, info)
        if server and studies[exp.name] is None:
            servers[exp.name] = mask_passwords(server)
        curves.setdefault(info["family"], {}).update(hist)
    return Source(models=models, best=best, table=trials_table(path, study_storage), infos=infos, studies=studies,
                  study_servers=servers, trial_curves=curves, metric=best[0]["metric"])


def _model_source(name: str, ckpt: str, data: str | None, split: str | None, cache: dict) -> ModelSource:
    held = Checkpoint.load(ckpt)
    faces, split_name, label = _faces(held, data, split, cache)
    faces.require_labels()
    return ModelSource(name=name, family=held.family, path=str(ckpt), ckpt=held,
                       faces=faces, split_name=split_name, source_label=label)


def _faces(ckpt: Checkpoint, data: str | None, split: str | None, cache: dict) -> tuple[FaceSet, str, str]:
    """The images to judge on: --data/--split, else the validation split of the training data."""
    trained_on = ckpt.source or "synthetic"
    source = data or trained_on
    if source not in cache:
        cache[source] = load_data(source)
    faces = cache[source]
    if ckpt.data.get("trained_on") and source == trained_on:  # a refit: only rows it never saw, as fer evaluate
        split = split or ("PrivateTest" if faces.has_split("PrivateTest") else None)
        refuse_seen_split(ckpt.data, split, str(ckpt.path))
    if split:
        return faces.select(split), split, f"{source} [{split}]"
    if data and data != trained_on:
        return faces, "all", f"{source} (all rows)"
    _, val, _ = split_for_training(faces, ckpt.train_config)  # the rows it was selected on
    kind = ckpt.val_split
    return val, kind, f"{source} [validation: {kind}]"


def chosen_images(m: ModelSource, indices: list[int] | None) -> tuple[np.ndarray, list[str]]:
    """The given indices, or a correctly and a wrongly classified image per class."""
    labels, preds = m.faces.labels, m.preds
    if indices:  # checked against the images before the report starts (report._check_options)
        idx = np.array(indices)
    else:
        picks = []
        for c in range(len(CLASSES)):
            for ok in (True, False):
                hit = np.flatnonzero((labels == c) & ((preds == c) == ok))
                if hit.size:
                    picks.append(hit[0])
        idx = np.array(picks[:16])
    captions = [f"#{i} {CLASSES[labels[i]]}->{CLASSES[preds[i]]}" for i in idx]
    return idx, captions


def eval_inputs(m: ModelSource, idx: np.ndarray) -> tuple[torch.Tensor, np.ndarray, np.ndarray | None]:
    """Model inputs (B, 1, s, s) as the model sees them at test time (normalised, centre crop),
    the cropped faces for display, and the cropped decisive-region masks when known."""
    s = m.prep.crop_size
    raw = torch.as_tensor(m.faces.images[idx]).unsqueeze(1)
    x = centre_crop(normalize(raw, m.prep), s)
    shown = centre_crop(raw, s)[:, 0].numpy()
    masks = None if m.faces.masks is None else centre_crop(torch.as_tensor(m.faces.masks[idx]), s).numpy()
    return x, shown, masks
