import pytest
import torch

from probgen.data.digits import load_digits_split

# The test machine is shared; one thread per process avoids oversubscription.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def digits():
    """``(train_x, train_y, test_x, test_y)`` of the fixed digits split, images in 0..16."""
    return load_digits_split()


@pytest.fixture(scope="session")
def mnist():
    """``load_dataset("mnist")`` (28x28, 0..255); skipped when no MNIST is on this machine."""
    from probgen.data import load_dataset
    from probgen.errors import DataError

    try:
        return load_dataset("mnist")
    except DataError as err:
        pytest.skip(str(err))
