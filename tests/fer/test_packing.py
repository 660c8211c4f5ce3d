"""fer.packing: trials per GPU chosen from measured total rates, under a fake timer."""
import pytest

from fer.packing import Packing, PackingCache, choose_packing, measure_gpu_packing, measure_packing


class FakeTimer:
    """Total images/s with k trials at once, as if measured (None: ran out of memory); records k."""

    def __init__(self, rates: dict):
        self.rates, self.timed = rates, []

    def rate(self, k):
        self.timed.append(k)
        return self.rates[k]


@pytest.fixture
def cache(tmp_path):
    return PackingCache(tmp_path)


def test_a_gpu_that_saturates_at_one_trial_runs_one(cache):
    timer = FakeTimer({1: 1000.0, 2: 990.0, 4: 960.0, 8: 900.0})
    p = measure_packing(timer, key="k", cache=cache)
    assert p.trials_per_gpu == 1 and p.gpus_per_trial == 1.0
    assert timer.timed == [1, 2]  # at 2 each trial ran at 495 images/s, under half alone: 4 and 8 are not tried


def test_a_gpu_that_scales_to_four_runs_four(cache):
    timer = FakeTimer({1: 1000.0, 2: 1900.0, 4: 3400.0, 8: 3600.0})
    p = measure_packing(timer, key="k", cache=cache)
    assert p.trials_per_gpu == 4 and p.gpus_per_trial == 0.25  # 8 totals more, but 450 each is under half of 1000
    assert p.rates == {1: 1000.0, 2: 1900.0, 4: 3400.0, 8: 3600.0}
    assert p.describe() == ("4 trials per GPU (measured; 1: 1000, 2: 1900, 4: 3400, 8: 3600 images/s in all)")


def test_a_gpu_that_runs_out_of_memory_at_eight_runs_four(cache):
    p = measure_packing(FakeTimer({1: 1000.0, 2: 1950.0, 4: 3800.0, 8: None}), key="k", cache=cache)
    assert p.trials_per_gpu == 4 and "8: out of memory" in p.describe()


def test_the_choice_is_cached_by_key_and_measured_again_for_another(cache):
    first = measure_packing(FakeTimer({1: 1000.0, 2: 1900.0, 4: 3400.0, 8: 3600.0}), key="gpu|cnn|b64|bf16",
                            cache=cache, device="cuda:X")
    again = FakeTimer({1: 1.0, 2: 1.0, 4: 1.0, 8: 1.0})
    hit = measure_packing(again, key="gpu|cnn|b64|bf16", cache=cache)
    assert again.timed == [] and hit == first._replace(how="cached")
    other = FakeTimer({1: 1000.0, 2: 900.0, 4: 800.0, 8: 700.0})
    assert measure_packing(other, key="gpu|cnn|b128|bf16", cache=cache).trials_per_gpu == 1 and other.timed


def test_a_corrupt_cache_is_measured_again(cache):
    cache.path.write_text("{not json")
    timer = FakeTimer({1: 1000.0, 2: 1900.0, 4: 1950.0, 8: 1960.0})
    assert measure_packing(timer, key="k", cache=cache).trials_per_gpu == 2 and timer.timed


@pytest.mark.parametrize("rates, k", [({1: 1000.0, 2: 1000.0}, 1),  # a tie goes to fewer trials
                                      ({1: 1000.0, 2: None}, 1), ({}, 1),
                                      ({1: 100.0, 2: 199.0, 4: 201.0}, 4)])  # 50.25 each: just over half
def test_the_rule(rates, k):
    assert choose_packing(rates) == k


def test_without_cuda_one_trial_per_gpu_is_said(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    p = measure_gpu_packing({"model": {}, "train": {"batch_size": 64}}, faces=None)
    assert p == Packing(1, {}, "no CUDA device") and p.describe() == "1 trial per GPU (no CUDA device)"
