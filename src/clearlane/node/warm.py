"""One-time costs paid before the work that would otherwise pay them: every node, when it opens,
sets up numba's CPU target (:func:`warm_compiler`); a service, at start, also loads its
compiled kernels (:func:`load_cached_kernels`), not inside the first requests it answers.

The compiled kernels (numba, ``cache=True``) are loaded from their on-disk cache by the first
call of each signature: a service's first trade step loaded 18 of them, ~0.2 s of a 0.36 s
step every request queued behind it waited for (issue 18, twelfth session).
:func:`load_cached_kernels` loads every signature already in the cache now. It only *loads*:
a signature the cache holds for another machine, Python, numba or source (its index key
differs) is left to be compiled where it is first called, as before. It reads numba's cache
index through the dispatcher's cache object (numba 0.59–0.68); anything unexpected there
makes it load nothing rather than fail — the kernels then load on first call, as before.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

log = logging.getLogger(__name__)


def warm_compiler() -> None:
    """Pay numba's one-time set-up of its CPU target — the registry of compiled implementations
    that the first load of any cached kernel builds, 0.24–0.33 s on the bench machine — when the
    node opens, instead of inside its first step: a bulk clear's first chunk, or the first
    requests a service answers (issue 18). Idempotent: later calls cost microseconds."""
    from numba.core.registry import cpu_target

    cpu_target.target_context.refresh()


def load_cached_kernels(prefix: str = "clearlane.") -> int:
    """Load the cached machine code of every compiled kernel in the imported modules under
    ``prefix``, for every signature its cache holds for this machine; how many were loaded."""
    from numba.core.registry import CPUDispatcher

    seen: set[int] = set()
    loaded = 0
    for name, module in list(sys.modules.items()):
        if module is None or not name.startswith(prefix):
            continue
        for value in list(vars(module).values()):
            if isinstance(value, CPUDispatcher) and id(value) not in seen:
                seen.add(id(value))
                loaded += _load_cached(value)
    return loaded


def _load_cached(dispatcher: Any) -> int:
    cache = getattr(dispatcher, "_cache", None)
    index_file = getattr(cache, "_cache_file", None)
    if cache is None or index_file is None or not getattr(cache, "_enabled", False):
        return 0
    try:
        index = index_file._load_index()
        codegen = dispatcher.targetctx.codegen()
        loaded = 0
        for key in list(index):
            sig = key[0]
            if cache._index_key(sig, codegen) != key:
                continue  # another machine's, Python's or source's: compiling is not loading
            args = tuple(sig.args) if hasattr(sig, "args") else tuple(sig)  # the index keeps arg types
            if args in dispatcher.overloads:
                continue
            dispatcher.compile(sig)
            loaded += 1
        return loaded
    except Exception:  # an optimisation: the kernel then loads on its first call, as before
        log.debug("could not load the cached kernels of %s", dispatcher, exc_info=True)
        return 0
