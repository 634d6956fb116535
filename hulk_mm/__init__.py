"""hulk_mm: Hulk, the human-centric generalist model, on the OpenMMLab stack.

Importing the package applies the workarounds for the pinned upstream stack (:mod:`hulk_mm.compat`) and creates
the ``hulk_mm`` registries; models, datasets and metrics are imported lazily through the registries' locations.
"""
from . import compat
from .version import __version__

compat.apply()

from . import registry  # noqa: E402,F401  (registers the 'hulk_mm' scope)

__all__ = ['__version__', 'compat', 'registry']
