"""``python -m probgen`` (and ``torchrun -m probgen``) runs the command line."""

from probgen.cli.main import main

if __name__ == "__main__":
    main()
