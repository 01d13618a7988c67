from .cli_args import main

raise SystemExit(main())
