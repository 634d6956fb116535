"""Runner entry points, hooks and checkpoint publishing."""
from .hooks import RankConsistencyHook
from .optim_constructor import HulkLayerDecayOptimWrapperConstructor

__all__ = ['HulkLayerDecayOptimWrapperConstructor', 'RankConsistencyHook']
