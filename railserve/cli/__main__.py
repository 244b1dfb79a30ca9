"""`python -m railserve.cli`: the console script without its installed entry point."""

from railserve.cli import main

raise SystemExit(main())
