"""One module per Kafka API; each exposes ``HANDLER`` (or ``HANDLERS``, for a module that
serves two APIs). ``all_handlers`` finds them: a new API is a new module, nothing else.
ApiVersions is computed from these."""

from __future__ import annotations

import importlib
import pkgutil

from odradek.broker.api import Handler


def all_handlers() -> list[Handler]:
    """Every handler of the modules in this package, by API key."""
    found: dict[int, Handler] = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        handlers: list[Handler] = list(getattr(module, "HANDLERS", ()))
        single = getattr(module, "HANDLER", None)
        if single is not None:
            handlers.append(single)
        for handler in handlers:
            if handler.api_key in found:
                raise RuntimeError(f"two handlers for API key {handler.api_key}")
            found[handler.api_key] = handler
    return [found[key] for key in sorted(found)]
