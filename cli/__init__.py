"""The ``probgen`` command line (installed as the ``probgen.cli`` package)."""
