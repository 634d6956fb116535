"""ViTPose-L, classic decoder (mmpose's ``td-hm_ViTPose-large``): ViT-L (width 1024, 24 blocks, 16 heads), drop path
0.5, layer decay 0.8 over 24 + 2 layers; MAE ``mae_pretrain_vit_large.pth`` init."""
_base_ = ['./vitpose-base_8xb64-210e_coco-256x192.py']

embed_dim = 1024
optim_wrapper = dict(paramwise_cfg=dict(num_layers=26, layer_decay_rate=0.8))
model = dict(
    backbone=dict(
        tokenizer=dict(embed_dim=embed_dim),
        encoder=dict(depth=24, num_heads=16, drop_path_rate=0.5),
        init_cfg=dict(checkpoint='data/pretrained/mae_pretrain_vit_large.pth')),
    head=dict(in_channels=embed_dim))
