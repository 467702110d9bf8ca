from isthmus.apps.loadgen.cli import main

raise SystemExit(main())
