from lysmore.cli import main

raise SystemExit(main())
