from nanochat_next.cli import main

raise SystemExit(main())
