"""The ``nanochat-next`` command line: ``main`` builds the parser; one module per command family."""
