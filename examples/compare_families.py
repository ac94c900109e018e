"""Compare families on one dataset with the command line: `probgen fit` then `probgen compare`.

python examples/compare_families.py [--data moons] [--smoke]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

SMOKE = {
    "vae": ["hidden=16", "latent_dim=2"],
    "flow": ["transforms=2", "hidden=16,16"],
    "diffusion": ["timesteps=50", "hidden=32,32"],
}


def probgen(*args):
    subprocess.run([sys.executable, "-m", "probgen", *map(str, args)], check=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default="moons")
    parser.add_argument("--smoke", action="store_true", help="tiny models, a few steps")
    args = parser.parse_args()
    runs = Path(tempfile.mkdtemp())
    for family, tiny in SMOKE.items():
        sets = [a for pair in tiny for a in ("--set", pair)] if args.smoke else []
        steps = ["--steps", "20"] if args.smoke else []
        probgen("fit", family, "-d", args.data, "-o", runs / family, "-q", *steps, *sets)
    extra = ["-n", "300"] if args.smoke else []
    probgen(
        "compare",
        *(runs / f for f in SMOKE),
        "-m",
        "mmd,swd,precision,recall",
        "-o",
        runs / "figures",
        *extra,
    )


if __name__ == "__main__":
    main()
