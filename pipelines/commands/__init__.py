"""One module per ``wiring`` sub-command group; each exposes ``register(subparsers)``."""
