"""fer.speed: precision and layout chosen by measured training rates, cached per device and shape."""
import pytest
import torch

import fer.speed as speed
from fer.speed import SpeedCache, StepTimer, choose


class FakeTimer:
    """Training rates (images/s) per setting, as if measured; records what was timed."""

    def __init__(self, rates: dict, batch: int = 64):
        self.rates, self.timed = rates, []
        self.x = torch.zeros(batch, 1, 8, 8)

    def rate(self, precision, channels_last, give_up_s=float("inf")):
        self.timed.append((precision, channels_last))
        return self.rates[(precision, channels_last)]


def conv_net():
    return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.Flatten(), torch.nn.LazyLinear(7))


@pytest.fixture
def cache(tmp_path):
    return SpeedCache(tmp_path)


def test_emulated_bf16_slower_than_fp32_chooses_fp32(cache):
    timer = FakeTimer({("fp32", False): 190.0, ("fp32", True): 200.0, ("bf16", False): 11.0, ("bf16", True): 13.0})
    s = choose(conv_net(), torch.device("cpu"), 64, 8, timer=timer, cache=cache)
    assert (s.precision, s.channels_last, s.images_per_s, s.how) == ("fp32", True, 200.0, "measured")
    assert s.rates == {"fp32, contiguous": 190.0, "fp32, channels_last": 200.0, "bf16, contiguous": 11.0}
    # bf16's first layout was hopeless, so its second is not tried; the close ones are timed twice
    assert timer.timed == [("fp32", False), ("fp32", True), ("bf16", False), ("fp32", False), ("fp32", True)]
    assert not s.warning  # auto asked for nothing slow


def test_native_bf16_faster_chooses_bf16_and_a_close_layout_stays_contiguous(cache):
    timer = FakeTimer({("fp32", False): 100.0, ("fp32", True): 102.0, ("bf16", False): 300.0, ("bf16", True): 305.0})
    s = choose(conv_net(), torch.device("cpu"), 64, 8, timer=timer, cache=cache)
    assert (s.precision, s.channels_last) == ("bf16", False)  # 2% faster is within noise: default layout
    assert "bf16, contiguous at 300 images/s (measured; fp32, contiguous 100" in s.describe()


def test_bf16_barely_faster_stays_fp32(cache):
    timer = FakeTimer({("fp32", False): 100.0, ("bf16", False): 105.0})
    s = choose(torch.nn.Linear(64, 7), torch.device("cpu"), 64, 8, timer=timer, cache=cache)
    assert s.precision == "fp32" and timer.timed == [("fp32", False), ("bf16", False)] * 2  # an MLP: no layout


def test_an_explicit_bf16_that_is_emulated_warns_with_the_slowdown(cache, monkeypatch):
    monkeypatch.setattr(speed, "cpu_bf16_flag", lambda: "")
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    timer = FakeTimer({("fp32", False): 190.0, ("bf16", False): 5.0})
    s = choose(torch.nn.Linear(64, 7), torch.device("cpu"), 64, 8, precision="bf16", timer=timer, cache=cache)
    assert s.precision == "bf16"  # asked for: kept, but said
    assert s.warning == ("train.precision: bf16 runs 38.0x slower than fp32 on this CPU (AVX2, no AMX or "
                         "AVX512-BF16: bf16 is emulated); precision: auto would run fp32 at 190 images/s against 5")


def test_cuda_takes_bf16_by_its_rule_and_measures_only_the_layout(cache, monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Fake GPU")
    for supported, expected in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda s=supported: s)
        timer = FakeTimer({(expected, False): 5000.0, (expected, True): 9000.0})
        s = choose(conv_net(), torch.device("cuda"), 64, 8, timer=timer, cache=SpeedCache(cache.path.parent / expected))
        assert (s.precision, s.channels_last) == (expected, True)
        assert timer.timed == [(expected, False), (expected, True), (expected, True)]  # no fp32 against bf16


def test_a_measurement_is_cached_per_device_and_shape(cache):
    timer = FakeTimer({("fp32", False): 100.0, ("fp32", True): 150.0, ("bf16", False): 200.0, ("bf16", True): 400.0})
    first = choose(conv_net(), torch.device("cpu"), 64, 8, shape_key="a", timer=timer, cache=cache)
    again = choose(conv_net(), torch.device("cpu"), 64, 8, shape_key="a", timer=FakeTimer({}), cache=cache)
    assert again == first._replace(how="cached")
    other = FakeTimer({("fp32", False): 100.0, ("fp32", True): 90.0, ("bf16", False): 50.0, ("bf16", True): 40.0})
    assert choose(conv_net(), torch.device("cpu"), 64, 8, shape_key="b", timer=other, cache=cache).precision == "fp32"
    cache.path.write_text("not json")  # a damaged cache is a miss, not an error
    assert choose(conv_net(), torch.device("cpu"), 64, 8, shape_key="a", timer=timer, cache=cache).how == "measured"


def test_fixed_settings_measure_nothing(cache):
    s = choose(conv_net(), torch.device("cpu"), 64, 8, precision="fp32", channels_last=True, timer=FakeTimer({}),
               cache=cache)
    assert (s.precision, s.channels_last, s.how) == ("fp32", True, "given")


def test_the_step_timer_gives_up_on_a_setting_whose_warm_up_is_already_too_slow():
    ticks = iter(range(0, 1000, 10))  # every clock reading 10 s after the last: a 10 s step
    timer = StepTimer(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 7)), torch.device("cpu"), 4, 8,
                      clock=lambda: next(ticks))
    assert timer.rate("fp32", False, give_up_s=5.0) == pytest.approx(0.4)  # 4 images in the one warm-up step
    assert timer.rate("fp32", False) == pytest.approx(0.4)  # warm-up, then the timed steps


def test_timing_leaves_the_runs_random_state_and_weights_alone():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Dropout(0.5), torch.nn.Linear(64, 7))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(3)
    expected = torch.rand(1)
    torch.manual_seed(3)
    StepTimer(model, torch.device("cpu"), 4, 8).rate("bf16", False)
    assert torch.equal(torch.rand(1), expected)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_trials_of_one_architecture_share_a_measurement_whatever_their_dropout():
    from fer.models import create_model
    from fer.speed import model_shape

    a, b = create_model("small_cnn", head_dropout=0.1), create_model("small_cnn", head_dropout=0.45)
    assert model_shape(a) == model_shape(b)
    assert model_shape(a) != model_shape(create_model("small_cnn", channels=(16, 32, 64)))
    assert model_shape(a) != model_shape(create_model("small_cnn", head_dropout=0.0))  # no Dropout layer at all


def test_processes_measuring_one_key_take_turns_and_the_later_one_finds_it_cached(tmp_path):
    """Two trials of one shape start together: the second waits for the first's measurement."""
    import threading

    from fer.speed import SpeedCache

    cache, timers = SpeedCache(tmp_path), []

    def run(out):
        timer = FakeTimer({("fp32", False): 100.0, ("fp32", True): 120.0, ("bf16", False): 50.0,
                           ("bf16", True): 60.0})
        timers.append(timer)
        out.append(choose(conv_net(), torch.device("cpu"), 64, 8, shape_key="same", timer=timer, cache=cache))

    results: list = []
    threads = [threading.Thread(target=run, args=(results,)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(r.how for r in results) == ["cached", "measured"]
    assert sum(bool(t.timed) for t in timers) == 1  # one measurement between them
