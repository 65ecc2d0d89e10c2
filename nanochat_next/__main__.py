from nanochat_next.cli.main import main

raise SystemExit(main())
