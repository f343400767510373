import os

os.environ.setdefault("JAX_ENABLE_X64", "1")

from hypothesis import settings  # noqa: E402

# JIT-compiling code paths make per-example timing meaningless: no deadline, and a CI profile
# with a modest example count so the default run stays within its time budget.
settings.register_profile("ci", deadline=None, max_examples=25, derandomize=True)
settings.register_profile("dev", deadline=None, max_examples=50)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
