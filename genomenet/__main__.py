"""`python -m genomenet ...`: the same as the `genomenet` command."""

import sys

from genomenet.cli import main

if __name__ == "__main__":
    sys.exit(main())
