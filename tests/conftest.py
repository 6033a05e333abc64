"""Test setup: the parity fixture ``xp_device`` comes from xpnet's own harness."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")

pytest_plugins = ["xpnet.testing"]

from hypothesis import settings  # noqa: E402

# CI runs the same examples every time: a red build is reproducible, never a coin flip.
settings.register_profile("ci", derandomize=True, deadline=None)
if os.environ.get("CI"):
    settings.load_profile("ci")
