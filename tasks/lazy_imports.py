"""Modules imported on first use rather than when a library imports them.

great-expectations imports ``scipy.stats`` and ``altair`` when it loads, for the distribution
(KS test, KL divergence) expectations and their charts. The trade suite uses neither, yet the two
cost every worker process ~80 MB of resident memory and ~3 s of import time. ``defer`` puts a
stand-in module in ``sys.modules`` that imports the real one on the first attribute read and then
forwards to it, so any code that does use them still gets the real thing.

(The standard library's ``importlib.util.LazyLoader`` is no help here: on Python 3.11 the ``import``
statement itself reads the module's ``__spec__``, which loads it at once.)
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types
from typing import Any


class DeferredModule(types.ModuleType):
    """Stands in for a module not imported yet; the first missing attribute imports it."""

    def __init__(self, name: str, spec: importlib.machinery.ModuleSpec) -> None:
        super().__init__(name)
        self.__spec__ = spec
        self.__dict__["_deferred_lock"] = threading.Lock()

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._real_module(), attr)

    def _real_module(self) -> types.ModuleType:
        name = self.__name__
        with self.__dict__["_deferred_lock"]:
            if sys.modules.get(name) is self:
                del sys.modules[name]
                try:
                    return importlib.import_module(name)
                except BaseException:
                    sys.modules[name] = self
                    raise
        return importlib.import_module(name)


def defer(name: str) -> bool:
    """Defer importing ``name`` until it is used; False when it is imported already or missing."""
    if name in sys.modules:
        return False
    spec = importlib.util.find_spec(name)
    if spec is None:
        return False
    sys.modules[name] = DeferredModule(name, spec)
    return True


def is_loaded(name: str) -> bool:
    """True when ``name`` is imported for real (not missing, not deferred)."""
    return name in sys.modules and not isinstance(sys.modules[name], DeferredModule)
