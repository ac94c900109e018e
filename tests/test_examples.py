"""Every example runs (with --smoke); an example without an entry here fails the suite."""

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SMOKE = {
    "compare_families.py": ["--smoke"],
    "custom_model.py": ["--smoke"],
    "families_on_a_toy.py": ["--smoke"],
    "families_on_digits.py": ["--smoke"],
    "program_gmm.py": ["--smoke"],
    "program_hierarchical.py": ["--smoke"],
    "program_per_point_guide.py": ["--smoke"],
    "program_ppca.py": ["--smoke"],
    "program_vae_mixture_prior.py": ["--smoke"],
    "vae_digits.py": ["--smoke"],
    "vae_moons.py": ["--smoke"],
}


def test_every_example_has_an_entry():
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(SMOKE)


@pytest.mark.parametrize("name", sorted(SMOKE))
def test_example_runs(name, tmp_path):
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *SMOKE[name]],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
