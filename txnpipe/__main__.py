from txnpipe.cli import main

raise SystemExit(main())
