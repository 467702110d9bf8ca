"""`python -m isthmus.viz.tracing`: the tracing add-on's collector (what its pod runs)."""

from isthmus.viz.tracing.collector import main

raise SystemExit(main())
