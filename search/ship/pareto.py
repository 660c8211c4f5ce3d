"""Every trial's best model with what it costs, the Pareto-optimal ones marked, and the best
model within a budget of parameters or latency.

A model is Pareto-optimal for a cost (parameters, or CPU latency at batch 1 with its TTA)
when no other model scores at least as well on the validation metric for no more of that
cost, and strictly better on one of the two. Latency is measured by fer.ship.cost on this machine,
once per checkpoint (cached in the cache folder).
"""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from search.results import ResultsError, trials_table

COLUMNS = ("family", "trial_id", "metric", "value", "params", "latency_ms", "images_per_s", "tta", "pareto",
           "checkpoint")
INT8_COLUMNS = ("int8_latency_ms", "int8_images_per_s", "int8_agreement", "int8_passed")


def pareto_mask(values: list[float], costs: list[float]) -> list[bool]:
    """Whether each (value, cost) point is Pareto-optimal: higher value, lower cost."""
    def dominated(i: int) -> bool:
        return any(values[j] >= values[i] and costs[j] <= costs[i] and (values[j] > values[i] or costs[j] < costs[i])
                   for j in range(len(values)))
    return [not dominated(i) for i in range(len(values))]


def measured_trials(root: str | Path, family: str | None = None, latency: bool = True,
                    table: pd.DataFrame | None = None, int8: bool = False) -> pd.DataFrame:
    """One row per trial with a checkpoint (COLUMNS), its best epoch's metric and what it costs;
    `pareto` says against which costs it is optimal ("params", "latency", both, or ""). `table`:
    root's trials_table, when the caller has read it already. With int8, each checkpoint's int8
    ONNX export is measured too (fer.ship.cost.int8_cost): its latency, whether it passes its gate,
    and "int8" in `pareto` for the optimal ones among those that pass."""
    from fer.ship.cost import checkpoint_cost, int8_cost

    table = trials_table(root) if table is None else table
    table = table[table["checkpoint"].notna()]
    if family:
        table = table[table["family"] == family]
    if table.empty:
        raise ResultsError(f"{root}: no {family + ' ' if family else ''}trial has a checkpoint yet")
    rows = []
    for _, t in table.iterrows():
        cost = checkpoint_cost(t["checkpoint"]) if latency else {"params": t["num_params"]}
        rows.append({"family": t["family"], "trial_id": t["trial_id"], "metric": t["metric"], "value": t[t["metric"]],
                     "params": int(cost["params"]), "latency_ms": cost.get("latency_ms", math.nan),
                     "images_per_s": cost.get("images_per_s", math.nan), "tta": cost.get("tta", ""),
                     "checkpoint": t["checkpoint"]})
    out = pd.DataFrame(rows)
    marks = [pareto_mask(out["value"].tolist(), out[c].tolist()) for c in ("params", "latency_ms")]
    out["pareto"] = [" ".join(n for n, m in zip(("params", "latency"), pair) if m) for pair in zip(*marks)]
    columns = list(COLUMNS)
    if int8:
        measured = pd.DataFrame([int8_cost(c) for c in out["checkpoint"]])
        out = pd.concat([out, measured], axis=1)
        passed = out[out["int8_passed"]]
        optimal = set(passed.index[pareto_mask(passed["value"].tolist(), passed["int8_latency_ms"].tolist())])
        out["pareto"] = [(p + " int8").strip() if i in optimal else p for i, p in zip(out.index, out["pareto"])]
        columns = [*COLUMNS[:-2], *INT8_COLUMNS, *COLUMNS[-2:]]
    return out[columns].sort_values("value", ascending=False, ignore_index=True)


def best_within(root: str | Path, max_params: int | None = None,
                max_latency_ms: float | None = None) -> tuple[list[dict], list[str]]:
    """(the best trial of each family within the limits, one line per family none of whose trials
    is within them). Latency is measured only when it is limited."""
    table = measured_trials(root, latency=max_latency_ms is not None)
    picked, none = [], []
    for family, rows in table.groupby("family"):
        ok = rows[(rows["params"] <= (max_params or math.inf))
                  & (rows["latency_ms"].fillna(0) <= (max_latency_ms or math.inf))]
        if ok.empty:
            smallest = rows.sort_values(["params", "latency_ms"]).iloc[0]
            lowest = "" if max_latency_ms is None else f", the fastest {rows['latency_ms'].min():.2f} ms"
            none.append(f"{family}: no trial meets {_limits(max_params, max_latency_ms)} (the smallest has "
                        f"{smallest['params']:,} parameters{lowest})")
        else:
            picked.append(ok.iloc[0].to_dict())  # rows are sorted best first
    return picked, none


def _limits(max_params: int | None, max_latency_ms: float | None) -> str:
    parts = ([f"--max-params {max_params:,}"] if max_params else []) + (
        [f"--max-latency-ms {max_latency_ms:g}"] if max_latency_ms else [])
    return " and ".join(parts)
