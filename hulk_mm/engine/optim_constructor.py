"""Layer-wise learning-rate decay and Hulk's weight-decay exemptions for any model that holds hulk_mm's encoder.

Official Hulk (OpenGVLab/Hulk ``core/solvers/solver_mae_devnew.py:210-319`` ``create_optimizer`` with
``core/utils.py:965-992`` ``get_num_layer_for_vit`` / ``get_num_layer_for_vit_with_adapter``, release yaml
``layer_decay: {num_layers: 12, layer_decay_rate: 0.75, lpe_lr: True}``) gives every parameter a layer id and
multiplies its learning rate by ``rate ** (num_layers - 1 - layer_id)``:

=====================================================  ==================  ===================================
parameter                                              layer id            lr multiplier (release: 12, 0.75)
=====================================================  ==================  ===================================
every tokenizer ("adapter") parameter                  0                   0.75^11 = 0.042
encoder block i (0-based)                              i + 1               0.75^(10 - i): block 0 = 0.056,
                                                                           block 10 = 1.0, block 11 = 1.333
encoder final norm                                     num_layers - 1      1.0
everything else (neck, decoder, de-tokenizers, heads)  num_layers - 1      1.0 (official: no multiplier)
=====================================================  ==================  ===================================

Block 11 above 1.0 is the official quirk of ``num_layers: 12`` for 12 blocks, kept as released. With
``num_layers = depth + 2`` the same formula is mmpose's ViTPose rule (block i x rate^(depth - i), patch embedding
x rate^(depth + 1), the rest x 1.0). The official tokenizer PE tables (layer id num_layers - 1 under ``lpe_lr``) are
frozen in the release, so that branch never applies; here they are buffers.

Why not mmpose's ``LayerDecayOptimWrapperConstructor``: it assigns layer ids from mmpretrain names
(``backbone.layers.N``, ``backbone.patch_embed``) and sends every other name to the last group, so with our encoder
(``backbone.encoder.blocks.N``) every block and the tokenizer silently get x1.0. Here the encoder is found by type
(every :class:`~hulk_mm.models.encoder.ViTEncoder` in the model) and its tokenizers structurally (the encoder's
sibling ``tokenizer`` module or the members of its sibling ``tokenizers`` dict: ``HulkEncoder.tokenizer``,
``HulkShared.tokenizers``), so the rule holds wherever the encoder sits (``shared.encoder.blocks.N`` in Hulk,
``backbone.encoder.blocks.N`` in an mmpose / mmdet / mmseg model). A model without the encoder, or an encoder
parameter no rule covers, is an error.

No weight decay (official rule, ``solver_mae_devnew.py:287-297``, applied to the parameter's own name as there):
names containing ``bias``, ``pos_embed``, ``cls_token``, ``rel_pos_``, ``relative_position_bias_table``,
``absolute_pos_embed``, and ``type_embed`` (official: an ``nn.Embedding``; ours: a Parameter); every parameter of
a LayerNorm / GroupNorm / BatchNorm / InstanceNorm module (by type, so ``Norm2d`` subclasses count) and every
``nn.Embedding``. The modality indicator (official ``mask_token``), ``translate_weight`` and conv kernels are
decayed (unlike mmpose's ViTPose rule, a 1-D parameter that is neither a bias nor a norm weight is decayed).
Frozen parameters are left out.
"""
from __future__ import annotations

import re
from collections import OrderedDict

import torch.nn as nn
from mmengine.logging import print_log
from mmengine.optim import DefaultOptimWrapperConstructor

from hulk_mm.models.encoder import ViTEncoder
from hulk_mm.registry import OPTIM_WRAPPER_CONSTRUCTORS

NO_DECAY_NAMES = ('bias', 'pos_embed', 'cls_token', 'rel_pos_', 'relative_position_bias_table',
                  'absolute_pos_embed', 'type_embed')
# _NormBase: BatchNorm1d/2d/3d, SyncBatchNorm, InstanceNorm1d/2d/3d (the official list, by type)
NO_DECAY_MODULES = (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._NormBase, nn.Embedding)


def _join(prefix: str, name: str) -> str:
    return f'{prefix}.{name}' if prefix else name


def encoder_scopes(model: nn.Module) -> tuple[list[str], list[str]]:
    """Module names of every ViTEncoder in ``model`` and of the tokenizers that feed them.

    Raises:
        ValueError: the model holds no ViTEncoder.
    """
    modules = dict(model.named_modules())
    encoders = [name for name, m in modules.items() if isinstance(m, ViTEncoder)]
    if not encoders:
        raise ValueError(
            f'{type(model).__name__} holds no hulk_mm ViTEncoder, so HulkLayerDecayOptimWrapperConstructor has no '
            f'layers to decay. For an mmpretrain VisionTransformer use mmpose\'s LayerDecayOptimWrapperConstructor.')
    tokenizers = []
    for name in encoders:
        parent = name.rpartition('.')[0]
        owner = modules[parent]
        if isinstance(getattr(owner, 'tokenizer', None), nn.Module):
            tokenizers.append(_join(parent, 'tokenizer'))
        if isinstance(getattr(owner, 'tokenizers', None), nn.ModuleDict):
            tokenizers += [_join(parent, f'tokenizers.{key}') for key in owner.tokenizers]
    return encoders, tokenizers


def _under(name: str, scope: str) -> bool:
    return not scope or name == scope or name.startswith(scope + '.')


def layer_id(name: str, num_layers: int, encoders: list[str], tokenizers: list[str]) -> tuple[int, str]:
    """Official layer id of parameter ``name`` and the scope it belongs to (for the log table).

    Returns:
        (layer id, scope): tokenizer 0, encoder block i -> i + 1, encoder final norm and every parameter outside
        the encoder -> num_layers - 1.
    """
    for scope in tokenizers:
        if _under(name, scope):
            return 0, scope
    for scope in encoders:
        if _under(name, scope):
            rel = name[len(scope) + 1:] if scope else name
            block = re.match(r'blocks\.(\d+)\.', rel)
            if block:
                return int(block.group(1)) + 1, _join(scope, f'blocks.{block.group(1)}')
            if rel.startswith('norm.'):
                return num_layers - 1, _join(scope, 'norm')
            raise ValueError(f'no layer-decay rule for encoder parameter {name!r}: only blocks.N.* and norm.* '
                             f'of a ViTEncoder have one')
    return num_layers - 1, '.'.join(name.split('.')[:-1][:2]) or name


def no_weight_decay(module: nn.Module, param_name: str) -> bool:
    """Official exemption rule for parameter ``param_name`` (its own name, without the module path) of
    ``module``."""
    return any(key in param_name for key in NO_DECAY_NAMES) or isinstance(module, NO_DECAY_MODULES)


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class HulkLayerDecayOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """Parameter groups with Hulk's layer-wise lr decay and weight-decay exemptions (see the module docstring).

    Parameters with equal (lr multiplier, decay multiplier) share one group; each group carries ``lr = base lr x
    lr_mult``, ``weight_decay = base wd x decay_mult`` and the two multipliers. The group table is logged once.
    Any optimizer type works (AdamW, Adafactor, SGD, ...): only ``lr`` and ``weight_decay`` are set per group.

    Example (release Hulk; ViTPose-style models use ``num_layers = depth + 2``)::

        optim_wrapper = dict(
            optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05),
            constructor='HulkLayerDecayOptimWrapperConstructor',
            paramwise_cfg=dict(num_layers=12, layer_decay_rate=0.75))

    Args:
        optim_wrapper_cfg: the ``optim_wrapper`` config (``optimizer`` with ``lr``, optionally ``weight_decay``).
        paramwise_cfg: ``num_layers`` (int) and ``layer_decay_rate`` (float in (0, 1]); nothing else.
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: dict | None = None):
        cfg = dict(paramwise_cfg or {})
        if set(cfg) != {'num_layers', 'layer_decay_rate'}:  # e.g. mmpose's custom_keys, which it ignores
            raise ValueError(f'HulkLayerDecayOptimWrapperConstructor takes paramwise_cfg=dict(num_layers=..., '
                             f'layer_decay_rate=...) and nothing else, got {cfg}')
        super().__init__(optim_wrapper_cfg, cfg)
        self.num_layers = cfg['num_layers']
        self.layer_decay_rate = float(cfg['layer_decay_rate'])
        if not isinstance(self.num_layers, int) or self.num_layers < 1:
            raise ValueError(f'num_layers must be a positive int, got {self.num_layers!r}')
        if not 0 < self.layer_decay_rate <= 1:
            raise ValueError(f'layer_decay_rate must be in (0, 1], got {self.layer_decay_rate}')
        if self.base_lr is None:
            raise ValueError('layer decay scales the optimizer lr: set optimizer.lr')

    def lr_mult(self, layer: int) -> float:
        return self.layer_decay_rate ** (self.num_layers - 1 - layer)

    def add_params(self, params: list, module: nn.Module) -> None:
        """Append one param group per (lr_mult, decay_mult) of ``module``'s trainable parameters to ``params``
        (called once by ``__call__`` with the whole model)."""
        encoders, tokenizers = encoder_scopes(module)
        groups: dict[tuple[float, float], dict] = OrderedDict()
        seen = set()
        for module_name, owner in module.named_modules():
            for param_name, param in owner.named_parameters(recurse=False):
                if not param.requires_grad or id(param) in seen:
                    continue
                seen.add(id(param))
                name = _join(module_name, param_name)
                layer, scope = layer_id(name, self.num_layers, encoders, tokenizers)
                key = (self.lr_mult(layer), 0.0 if no_weight_decay(owner, param_name) else 1.0)
                group = groups.setdefault(key, dict(params=[], scopes=OrderedDict()))
                group['params'].append(param)
                group['scopes'][scope] = None
        for (lr_mult, decay_mult), group in groups.items():
            entry = dict(params=group['params'], lr=self.base_lr * lr_mult, lr_mult=lr_mult, decay_mult=decay_mult)
            if self.base_wd is not None:
                entry['weight_decay'] = self.base_wd * decay_mult
            elif decay_mult == 0:
                entry['weight_decay'] = 0.0  # exempt even from the optimizer's own default decay
            params.append(entry)
        print_log(self.summary(groups), logger='current')

    def summary(self, groups: dict) -> str:
        """The group table: multipliers, sizes and the modules each group covers."""
        lines = [f'Hulk layer decay (num_layers={self.num_layers}, rate={self.layer_decay_rate}): '
                 f'{len(groups)} parameter groups',
                 f'{"lr_mult":>9} {"wd_mult":>7} {"tensors":>7} {"elements":>10}  modules']
        for (lr_mult, decay_mult), group in sorted(groups.items()):
            scopes = ', '.join(group['scopes'])
            scopes = scopes if len(scopes) <= 110 else scopes[:107] + '...'
            numel = sum(p.numel() for p in group['params'])
            lines.append(f'{lr_mult:9.4f} {decay_mult:7.1f} {len(group["params"]):7d} {numel:10d}  {scopes}')
        return '\n'.join(lines)
