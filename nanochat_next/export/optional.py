"""The export formats' optional dependencies (the ``export`` extra): imported when a format needs them."""

from __future__ import annotations

from nanochat_next.errors import UserError


def need(module: str, fmt: str):
    """Import an optional dependency of an export format, or say in one line how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise UserError(f"--to {fmt} needs the {module} package: pip install 'nanochat-next[export]'") from None
