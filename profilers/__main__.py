"""`python -m profilers --spec SPEC.json`: the sampler process (profilers/sampler.py)."""

import sys

from profilers.sampler import main

sys.exit(main())
