"""Lazy re-exports, so importing a package does not import every optional backend."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

__all__ = ["lazy_attribute"]


def lazy_attribute(package: str, table: Mapping[str, str], name: str) -> Any:
    """Resolve ``name`` of ``package`` from the module that ``table`` maps it to.

    Meant for a module-level ``__getattr__``; the backend modules import their
    optional SDKs only when a service is constructed, so this import itself succeeds.
    """
    module = table.get(name)
    if module is None:
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
