"""Test setup: the parity fixture ``xp_device`` comes from xpnet's own harness."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")

pytest_plugins = ["xpnet.testing"]
