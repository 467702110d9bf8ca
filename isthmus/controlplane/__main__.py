from isthmus.controlplane.main import main

raise SystemExit(main())
