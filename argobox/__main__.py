"""`python -m argobox` is the `argobox` command."""

import sys

from argobox.server.cli import main

sys.exit(main())
