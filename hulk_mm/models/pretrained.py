"""Encoder weights into hulk_mm models: from hulk_mm weights files and from MAE checkpoints.

Two file layouts are read, always through :func:`hulk_mm.compat.load_weights` (``weights_only=True``):

* **hulk_mm weights** (``tools/model_converters/publish_model.py`` output, ``{'state_dict', 'meta'}``): the keys
  under ``prefix`` (default ``'shared.'``: a Hulk model's ``shared.tokenizers.image.*`` and ``shared.encoder.*``;
  ``'backbone.'`` for an mm model whose backbone is :class:`~hulk_mm.models.backbone.HulkEncoder`, with
  ``backbone.tokenizer.*``). A position table of another grid than the target's is not loaded: hulk_mm tables are
  always MAE's 14x14 sin-cos grid resampled to the tokenizer grid, which the target has computed for its own grid.
* **MAE** (``mae_pretrain_vit_base.pth``: ``{'model': {...}}`` with timm names): ``patch_embed.proj.*`` -> the image
  tokenizer's ``proj``, ``blocks.N.*`` and ``norm.*`` -> the encoder; ``cls_token``, ``mask_token``, ``fc_norm.*``,
  ``head.*`` and ``decoder_*`` are ignored (Hulk has no CLS token). ``pos_embed`` (1, 1 + 14*14, C) with its CLS
  slot: Hulk builds its tables by resampling exactly this table bicubically. Ours is computed
  (:func:`~hulk_mm.models.positional.mae_pos_embed`) and equals MAE's released table bit for bit (both are the
  float64 sin-cos grid rounded to float32), so it is kept when the file's table is that grid; a file with another
  table (another checkpoint's learned PE) has its own table resampled to the tokenizer grid instead.

Targets: :class:`~hulk_mm.models.backbone.HulkEncoder` (``tokenizer``, ``encoder``), and Hulk's shared part
(:class:`~hulk_mm.models.hulk.HulkShared`: ``tokenizers['image']``, ``encoder``) or a whole Hulk model (its
``shared``). For a Hulk model from MAE::

    from hulk_mm.models.pretrained import load_encoder_weights
    load_encoder_weights(model, 'mae_pretrain_vit_base.pth')     # model.shared.{encoder, tokenizers.image}

or map the keys once with :func:`mae_to_hulk_state_dict` and load non-strictly.
"""
from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field

import torch
import torch.nn as nn
from mmengine.logging import print_log
from torch import Tensor

from hulk_mm.compat import load_weights
from hulk_mm.models.encoder import ViTEncoder
from hulk_mm.models.positional import resample_2d, sincos_2d

__all__ = ['LoadReport', 'load_encoder_weights', 'mae_to_hulk_state_dict', 'init_weights_with_pretrained']

# MAE keys with no place in a Hulk encoder (CLS token, MAE's own mask token and decoder, fine-tuning heads)
MAE_IGNORED = re.compile(r'^(cls_token|mask_token|fc_norm\.|head\.|decoder_)')
# MAE's released table is the exact float64 grid rounded to float32; anything further away is another table
PE_ATOL = 1e-6


@dataclass
class LoadReport:
    """What :func:`load_encoder_weights` did; key names are relative to the target module.

    Attributes:
        file: the weights file.
        layout: ``'hulk_mm'`` or ``'mae'``.
        loaded: target tensors now holding the file's values.
        missing: target tensors of the tokenizer / encoder the file has no value for (left as they were).
        unexpected: file tensors meant for the tokenizer / encoder that the target does not have (e.g. a deeper
            encoder's ``blocks.12.*``), given as the target names they would have had.
        ignored: file keys outside the tokenizer / encoder (other prefixes, the Hulk neck and decoder, MAE's CLS
            token and decoder).
        pos_embed: where the tokenizer's position table comes from: ``'file'``, ``'computed'`` (MAE's table is
            the standard grid; or ``'computed (...)'``: a hulk_mm file's table is for another grid) or
            ``'resampled from file'`` (an MAE-layout table other than the standard grid).
    """

    file: str
    layout: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    pos_embed: str = 'computed'


def _targets(module: nn.Module) -> tuple[str, nn.Module, str, nn.Module]:
    """(name, image tokenizer, name, encoder) of a HulkEncoder, a HulkShared or a Hulk (via its ``shared``)."""
    if isinstance(getattr(module, 'shared', None), nn.Module):
        name, tokenizer, enc_name, encoder = _targets(module.shared)
        return f'shared.{name}', tokenizer, f'shared.{enc_name}', encoder
    encoder = getattr(module, 'encoder', None)
    if isinstance(encoder, ViTEncoder):
        if isinstance(getattr(module, 'tokenizer', None), nn.Module):
            return 'tokenizer', module.tokenizer, 'encoder', encoder
        tokenizers = getattr(module, 'tokenizers', None)
        if isinstance(tokenizers, nn.ModuleDict) and 'image' in tokenizers:
            return 'tokenizers.image', tokenizers['image'], 'encoder', encoder
    raise TypeError(f'{type(module).__name__} is not a HulkEncoder, HulkShared or Hulk with an image tokenizer and '
                    f'a ViTEncoder')


def _file_state_dict(raw) -> tuple[dict, str]:
    """The tensor dict of a loaded file and its layout (``'mae'`` when the keys are timm's top-level ViT names)."""
    if isinstance(raw, dict) and isinstance(raw.get('state_dict'), dict):
        sd = raw['state_dict']
    elif isinstance(raw, dict) and isinstance(raw.get('model'), dict):
        sd = raw['model']
    else:
        sd = raw
    if not isinstance(sd, dict):
        raise TypeError(f'expected a dict of tensors, got {type(sd).__name__}')
    mae = 'patch_embed.proj.weight' in sd or any(k.startswith('blocks.') for k in sd)
    return sd, 'mae' if mae else 'hulk_mm'


def _split_mae(sd: dict) -> tuple[dict, dict, list[str]]:
    """MAE (timm names) -> (tokenizer keys, encoder keys, ignored keys); ``pos_embed`` is neither (see caller)."""
    tokenizer, encoder, ignored = {}, {}, []
    for key, value in sd.items():
        if key.startswith('patch_embed.proj.'):
            tokenizer['proj.' + key[len('patch_embed.proj.'):]] = value
        elif key.startswith(('blocks.', 'norm.')):
            encoder[key] = value
        elif key != 'pos_embed':
            ignored.append(key)
    return tokenizer, encoder, ignored


def _split_hulk_mm(sd: dict, prefix: str) -> tuple[dict, dict, list[str]]:
    """hulk_mm keys under ``prefix`` -> (tokenizer keys, encoder keys, ignored keys)."""
    tokenizer, encoder, ignored = {}, {}, []
    for key, value in sd.items():
        rel = key[len(prefix):] if key.startswith(prefix) else None
        if rel is not None and rel.startswith('encoder.'):
            encoder[rel[len('encoder.'):]] = value
        elif rel is not None and rel.startswith(('tokenizers.image.', 'tokenizer.')):
            tokenizer[rel.split('.', 2)[-1] if rel.startswith('tokenizers.') else rel[len('tokenizer.'):]] = value
        else:
            ignored.append(key)
    return tokenizer, encoder, ignored


def mae_to_hulk_state_dict(sd: dict) -> dict[str, Tensor]:
    """MAE checkpoint (``{'model': {...}}`` or its inner dict) -> Hulk keys ``shared.encoder.*`` and
    ``shared.tokenizers.image.proj.*``.

    The position table is not mapped: Hulk computes it (it equals MAE's released table); use
    :func:`load_encoder_weights` to load a file whose table differs. Load the result with
    ``model.load_state_dict(sd, strict=False)``: everything else of the model is trained from scratch.
    """
    sd, layout = _file_state_dict(sd)
    if layout != 'mae':
        raise ValueError(f'not an MAE checkpoint (no patch_embed.proj.weight / blocks.N.* keys): {sorted(sd)[:5]}')
    tokenizer, encoder, _ = _split_mae(sd)
    return {**{f'shared.tokenizers.image.{k}': v for k, v in tokenizer.items()},
            **{f'shared.encoder.{k}': v for k, v in encoder.items()}}


def _mae_pos_table(sd: dict, file: str) -> tuple[Tensor, tuple[int, int]]:
    """MAE ``pos_embed`` without its CLS slot -> ((N, C) table, its square grid)."""
    table = sd['pos_embed'].reshape(-1, sd['pos_embed'].shape[-1])
    extra = 1 if 'cls_token' in sd else 0
    side = math.isqrt(table.shape[0] - extra)
    if side * side != table.shape[0] - extra:
        raise ValueError(f'{file}: pos_embed of {table.shape[0]} entries ({extra} CLS) is not a square grid')
    return table[extra:], (side, side)


def _compress(keys: list[str]) -> str:
    """Exact but short: ``encoder.blocks.[0-11].attn.qkv.weight`` for the same key over consecutive blocks."""
    groups: dict[str, list[int]] = {}
    for key in keys:
        m = re.match(r'(.*\bblocks\.)(\d+)(\..*)', key)
        pattern, index = (m.group(1) + '{}' + m.group(3), int(m.group(2))) if m else (key, None)
        groups.setdefault(pattern, []).append(index)
    out = []
    for pattern, indices in groups.items():
        if indices[0] is None:
            out.append(pattern)
            continue
        indices = sorted(indices)
        runs, start = [], indices[0]
        for a, b in zip(indices, indices[1:] + [None]):
            if b != a + 1:
                runs.append(str(start) if start == a else f'{start}-{a}')
                start = b
        out.append(pattern.format('[' + ','.join(runs) + ']'))
    return ', '.join(out) if out else '-'


def load_encoder_weights(module: nn.Module, path: str, prefix: str = 'shared.', map_location='cpu') -> LoadReport:
    """Load the image tokenizer and the encoder of ``module`` from a hulk_mm weights file or an MAE checkpoint.

    Args:
        module: a :class:`~hulk_mm.models.backbone.HulkEncoder`, :class:`~hulk_mm.models.hulk.HulkShared` or Hulk.
        path: the weights file (read weights-only).
        prefix: for hulk_mm files, where the encoder sits in the file (``'shared.'``: a Hulk model's weights;
            ``'backbone.'``: an mm model with a HulkEncoder backbone). Not used for MAE files.
        map_location: as for ``torch.load``.

    Returns:
        The :class:`LoadReport`, also logged (mmengine ``current`` logger; a warning when keys are missing or
        unexpected beyond MAE's absent type embedding).

    Raises:
        ValueError: the file has no encoder key under ``prefix`` (the message names the file and the prefixes it
            has), a tensor's shape differs from the target's, or an MAE position table is not a square grid.
        FileNotFoundError, CheckpointNotWeightsError, UnsafeCheckpointError: from :func:`hulk_mm.compat.load_weights`.
    """
    tok_name, tokenizer, enc_name, encoder = _targets(module)
    sd, layout = _file_state_dict(load_weights(path, map_location=map_location))
    report = LoadReport(file=str(path), layout=layout)
    if layout == 'mae':
        tok_sd, enc_sd, report.ignored = _split_mae(sd)
    else:
        tok_sd, enc_sd, report.ignored = _split_hulk_mm(sd, prefix)
    if not enc_sd:
        tops = sorted({k.split('.')[0] + '.' for k in sd})
        raise ValueError(f'{path}: no encoder weights under prefix {prefix!r} (expected {prefix}encoder.blocks.0.* '
                         f'as in a hulk_mm weights file, or an MAE checkpoint with blocks.0.*); the file\'s keys '
                         f'start with {tops[:10]}')

    tok_own = tokenizer.state_dict()
    if 'pos_embed' not in tok_own:  # Hulk's shared image tokenizer: every task holds its own table
        tok_sd.pop('pos_embed', None)
        report.pos_embed = 'not held by this tokenizer (each Hulk task holds its table)'
    elif layout == 'mae' and 'pos_embed' in sd:
        table, grid = _mae_pos_table(sd, path)
        standard = grid == (14, 14) and torch.allclose(
            table.float(), sincos_2d(table.shape[-1], grid).to(table.device), rtol=0, atol=PE_ATOL)
        if not standard:
            tok_sd['pos_embed'] = resample_2d(table.float(), grid, tokenizer.grid)[None]
            report.pos_embed = 'resampled from file'
    elif 'pos_embed' in tok_sd:
        if tok_sd['pos_embed'].shape == tok_own['pos_embed'].shape:
            report.pos_embed = 'file'
        else:  # a table of another grid: ours is the same construction for our grid
            report.pos_embed = (f'computed (the file\'s table has {tok_sd.pop("pos_embed").shape[-2]} positions, '
                                f'this tokenizer {tok_own["pos_embed"].shape[-2]})')

    parts = ((tok_name, tokenizer, tok_sd), (enc_name, encoder, enc_sd))
    bad = [f'{name}.{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}'
           for name, target, source in parts for own in [target.state_dict()]
           for k, v in source.items() if k in own and v.shape != own[k].shape]
    if bad:  # checked before anything is loaded, so a failed load changes nothing
        raise ValueError(f'{path}: shape mismatch for ' + '; '.join(bad))
    for name, target, source in parts:
        own = target.state_dict()
        result = target.load_state_dict({k: v for k, v in source.items() if k in own}, strict=False)
        report.loaded += [f'{name}.{k}' for k in source if k in own]
        report.missing += [f'{name}.{k}' for k in result.missing_keys]
        report.unexpected += [f'{name}.{k}' for k in source if k not in own]

    expected_missing = {f'{tok_name}.type_embed'} if layout == 'mae' else set()  # MAE has no type embedding
    if report.pos_embed.startswith('computed'):
        expected_missing.add(f'{tok_name}.pos_embed')
    level = logging.WARNING if report.unexpected or set(report.missing) - expected_missing else logging.INFO
    print_log(f'Encoder weights from {path} ({layout} layout{"" if layout == "mae" else f", prefix {prefix!r}"}) '
              f'into {type(module).__name__}:\n  loaded ({len(report.loaded)}): {_compress(report.loaded)}\n'
              f'  missing ({len(report.missing)}): {_compress(report.missing)}\n'
              f'  unexpected ({len(report.unexpected)}): {_compress(report.unexpected)}\n'
              f'  ignored file keys: {len(report.ignored)}; position table: {report.pos_embed}',
              logger='current', level=level)
    return report


def init_weights_with_pretrained(module, init_weights, default_prefix: str = 'shared.') -> None:
    """``init_weights`` of a module whose ``init_cfg`` may hold ``dict(type='Pretrained', checkpoint=..., prefix=...)``.

    mmengine's ``PretrainedInit`` reads a file's ``state_dict`` (or the whole file) with module-relative names, so an
    MAE checkpoint (``{'model': {...}}``) or a Hulk weights file loads nothing into a HulkEncoder. Here, as in
    mmengine, the other ``init_cfg`` entries and the children's own ``init_weights`` run first, then the
    ``Pretrained`` entry goes through :func:`load_encoder_weights`.

    Args:
        module: the module (its ``init_cfg`` is read; restored afterwards).
        init_weights: the module's parent ``init_weights`` (``super().init_weights``).
        default_prefix: prefix used when the entry gives none.
    """
    cfgs = module.init_cfg if isinstance(module.init_cfg, list) else [module.init_cfg] if module.init_cfg else []
    pretrained = [c for c in cfgs if c.get('type') == 'Pretrained']
    if not pretrained:
        return init_weights()
    if len(pretrained) > 1:
        raise ValueError(f'{type(module).__name__}: more than one Pretrained entry in init_cfg: {pretrained}')
    cfg = dict(pretrained[0])
    cfg.pop('type')
    unknown = set(cfg) - {'checkpoint', 'prefix', 'map_location'}
    if unknown or 'checkpoint' not in cfg:
        raise ValueError(f'{type(module).__name__}: init_cfg Pretrained takes checkpoint, prefix and map_location, '
                         f'got {pretrained[0]}')
    saved = module.init_cfg
    module.init_cfg = [c for c in cfgs if c is not pretrained[0]] or None
    try:
        init_weights()
    finally:
        module.init_cfg = saved
    load_encoder_weights(module, cfg['checkpoint'], prefix=cfg.get('prefix', default_prefix),
                         map_location=cfg.get('map_location', 'cpu'))
