"""Official ViTPose checkpoints (ViTAE-Transformer/ViTPose, mmpose 0.x layout) -> a hulk_mm weights file for
``configs/vitpose/`` (Hulk's tokenizer + encoder as the backbone, mmpose 1.x's HeatmapHead).

    python tools/model_converters/vitpose_official_to_mm.py vitpose-b.pth OUT.pth \
        [--config configs/vitpose/vitpose-base_8xb64-210e_coco-256x192.py]

Official backbone ``ViT`` -> ``HulkEncoder`` and head ``TopdownHeatmapSimpleHead`` -> ``HeatmapHead``:

=============================================  ======================================================
official (ViTPose)                             hulk_mm
=============================================  ======================================================
backbone.patch_embed.proj.{weight,bias}        backbone.tokenizer.proj.*  (the conv keeps its 2 px
                                               padding: ``tokenizer.patch_padding=2`` in the config)
backbone.pos_embed (1, 1 + H*W, C)             backbone.tokenizer.pos_embed (1, H*W, C)
                                               = pos_embed[:, 1:] + pos_embed[:, :1]
backbone.blocks.N.*                            backbone.encoder.blocks.N.*  (timm names in both)
backbone.last_norm.*                           backbone.encoder.norm.*
keypoint_head.deconv_layers.* / final_layer.*  head.deconv_layers.* / head.final_layer.*
=============================================  ======================================================

Not a rename only: ViTPose adds the first (CLS) slot of its position table to every patch token
(``x + pos_embed[:, 1:] + pos_embed[:, :1]``, ``mmpose/models/backbones/vit.py`` ``forward_features``), so it is
folded into the table; and the patch convolution is padded, which the config's tokenizer reproduces. The image
tokenizer normalises pixels with ImageNet's mean / std as ViTPose's pipeline does, and has no type embedding in
these configs. The file is read with ``weights_only=True``; any key that is not mapped is an error.
"""
from __future__ import annotations

import argparse
import re
import sys
from collections import OrderedDict

import torch

from hulk_mm.compat import load_weights

RULES = (
    (r'^backbone\.patch_embed\.proj\.(weight|bias)$', r'backbone.tokenizer.proj.\1'),
    (r'^backbone\.blocks\.(\d+)\.(norm1|norm2|attn\.qkv|attn\.proj|mlp\.fc1|mlp\.fc2)\.(weight|bias)$',
     r'backbone.encoder.blocks.\1.\2.\3'),
    (r'^backbone\.last_norm\.(weight|bias)$', r'backbone.encoder.norm.\1'),
    (r'^keypoint_head\.((deconv_layers|final_layer)\..+)$', r'head.\1'),
)
POS_EMBED = 'backbone.pos_embed'


def convert_vitpose_state_dict(state_dict: dict[str, torch.Tensor]) -> OrderedDict[str, torch.Tensor]:
    """Official ViTPose state dict -> hulk_mm ``configs/vitpose`` state dict.

    Raises:
        KeyError: keys no rule maps (e.g. a ViTPose+ mixture-of-experts backbone), or no position table.
    """
    if POS_EMBED not in state_dict:
        raise KeyError(f'no {POS_EMBED}: not an official ViTPose checkpoint')
    out, unmapped = OrderedDict(), []
    for key, value in state_dict.items():
        if key == POS_EMBED:
            # (1, 1 + H*W, C): ViTPose adds slot 0 to every patch token
            out['backbone.tokenizer.pos_embed'] = value[:, 1:] + value[:, :1]
            continue
        for pattern, replacement in RULES:
            if re.match(pattern, key):
                out[re.sub(pattern, replacement, key)] = value
                break
        else:
            unmapped.append(key)
    if unmapped:
        raise KeyError(f'{len(unmapped)} official keys have no place in configs/vitpose: {unmapped[:10]}')
    return out


def read_state_dict(path: str) -> dict[str, torch.Tensor]:
    ckpt = load_weights(path, map_location='cpu')
    state_dict = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise ValueError(f'{path}: expected a dict (or a dict with a `state_dict`) of tensors')
    return {k[len('module.'):] if k.startswith('module.') else k: v for k, v in state_dict.items()}


def load_into_config(state_dict: dict[str, torch.Tensor], config: str):
    """Build ``config``'s model and load ``state_dict`` strictly; returns the model."""
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmpose.registry import MODELS

    cfg = Config.fromfile(config)
    with DefaultScope.overwrite_default_scope('mmpose'):
        model = MODELS.build(cfg.model)
    model.load_state_dict(state_dict, strict=True)
    return model


def convert(src: str, out_file: str, config: str | None = None) -> OrderedDict[str, torch.Tensor]:
    converted = convert_vitpose_state_dict(read_state_dict(src))
    print(f'{len(converted)} tensors, {sum(v.numel() for v in converted.values()) / 1e6:.2f} M values')
    if config:
        load_into_config(converted, config)
        print(f'loaded strictly into {config}')
    torch.save({'state_dict': converted, 'meta': {'source': 'official ViTPose', 'converted_from': src}}, out_file)
    print(f'wrote {out_file}')
    return converted


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', help='official ViTPose checkpoint (.pth)')
    parser.add_argument('out_file', help='hulk_mm weights file to write')
    parser.add_argument('--config', default=None, help='check a strict load into this configs/vitpose config')
    args = parser.parse_args(argv)
    try:
        convert(args.src, args.out_file, args.config)
    except (FileNotFoundError, ValueError, KeyError) as err:
        sys.exit(f'error: {err}')


if __name__ == '__main__':
    main()
