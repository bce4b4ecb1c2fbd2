"""`python -m app`: the same entry point as the `custos` console script."""

from app.cli import main

raise SystemExit(main())
