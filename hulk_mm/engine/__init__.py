"""Runner entry points, hooks and checkpoint publishing."""
from .hooks import RankConsistencyHook

__all__ = ['RankConsistencyHook']
