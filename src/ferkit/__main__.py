"""`python -m ferkit` (and `torchrun -m ferkit`) run the command line."""

import sys

from .cli import main

sys.exit(main())
