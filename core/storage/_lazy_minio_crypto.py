"""minio's package imports its admin client (`minio.minioadmin`), whose payload encryption
(`minio.crypto`) loads pycryptodome, argon2 and cffi on import: a third of minio's import time, paid by
every command (`list`, `get`...), for an API this tool never calls. Imported before minio (first in
`core.storage`), this module stands in for `minio.crypto` until one of its functions is called, then
loads the real one. A name the stand-in does not know loads the real module at once: a later minio that
imports more of it still works, only without the saving.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path
from typing import Any

_NAME = "minio.crypto"


def _real() -> types.ModuleType:
    module = sys.modules.get(_NAME)
    if module is not None and not getattr(module, "_stand_in", False):
        return module
    package = importlib.util.find_spec("minio")  # finds the package without importing it
    if package is None or package.origin is None:
        raise ImportError("minio is not installed")
    spec = importlib.util.spec_from_file_location(_NAME, Path(package.origin).parent / "crypto.py")
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {_NAME}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[_NAME] = module
    spec.loader.exec_module(module)
    return module


def encrypt(*args: Any, **kwargs: Any) -> Any:
    return _real().encrypt(*args, **kwargs)


def decrypt(*args: Any, **kwargs: Any) -> Any:
    return _real().decrypt(*args, **kwargs)


def _other(name: str) -> Any:
    if name.startswith("__"):  # the import system asks for __path__ and such: not a reason to load
        raise AttributeError(name)
    return getattr(_real(), name)


def _stand_in() -> types.ModuleType:
    module = types.ModuleType(_NAME, __doc__)
    module._stand_in = True  # type: ignore[attr-defined]
    module.encrypt, module.decrypt = encrypt, decrypt  # type: ignore[attr-defined]
    module.__getattr__ = _other  # type: ignore[method-assign]
    return module


def install() -> None:
    """Put the stand-in in place, unless minio (and so its crypto) is already imported."""
    if "minio" not in sys.modules and _NAME not in sys.modules:
        sys.modules[_NAME] = _stand_in()


install()
