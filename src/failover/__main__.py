"""``python -m failover``: the same as the ``failover`` command."""

from __future__ import annotations

import sys

from failover.cli import main

if __name__ == "__main__":
    sys.exit(main())
