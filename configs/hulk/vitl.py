"""Hulk ViT-L: the released ViT-B recipe (``vitb.py``) with the ViT-L/16 encoder of the official code
(``vit_large_patch16_mask``: 1024 wide, 24 blocks, 16 heads, MLP 4096; 302.31 M parameters in the blocks).

The official repository releases no ViT-L training configuration (spec §11.7), so everything else is ViT-B's: the
1024 -> 256 neck, the same decoder, pathways and loss weights; each task's input position table is 1024 wide (the
pathways take the encoder width from the model). MAE ViT-L weights (``mae_pretrain_vit_large.pth``) load through
``model.shared.init_cfg = dict(type='Pretrained', checkpoint=...)``. Layer-wise learning-rate decay (issue 6's
schedule) would use ``num_layers=24`` in the same convention as ViT-B's 12.
"""
_base_ = ['./vitb.py']

model = dict(
    shared=dict(
        tokenizers=dict(image=dict(embed_dim=1024), skeleton=dict(embed_dim=1024)),
        encoder=dict(embed_dim=1024, depth=24, num_heads=16)))
