import time

import pytest

from probgen.errors import ConfigError
from probgen.metrics.speed import samples_per_second


def test_rate_of_a_sampler_with_known_duration_and_warmup_calls():
    calls = []

    def sample(n):
        calls.append(n)
        time.sleep(0.02)
        return None

    rate = samples_per_second(sample, 100, warmup=2, repeats=3)
    assert calls == [100] * 5
    # sleep() lasts at least its argument; a loaded machine may only slow it down.
    assert 100 / 0.5 < rate <= 100 / 0.02


def test_rejects_empty_requests():
    with pytest.raises(ConfigError):
        samples_per_second(lambda n: None, 0)
