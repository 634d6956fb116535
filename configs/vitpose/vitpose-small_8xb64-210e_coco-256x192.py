"""ViTPose-S, classic decoder (mmpose's ``td-hm_ViTPose-small``): ViT-S (width 384, 12 blocks, 12 heads), drop path
0.1, layer decay 0.8; MAE ViT-S init (ViTPose's own MAE-pretrained ViT-S; timm key layout) in data/pretrained/."""
_base_ = ['./vitpose-base_8xb64-210e_coco-256x192.py']

embed_dim = 384
optim_wrapper = dict(paramwise_cfg=dict(num_layers=14, layer_decay_rate=0.8))
model = dict(
    backbone=dict(
        tokenizer=dict(embed_dim=embed_dim),
        encoder=dict(depth=12, num_heads=12, drop_path_rate=0.1),
        init_cfg=dict(checkpoint='data/pretrained/mae_pretrain_vit_small.pth')),
    head=dict(in_channels=embed_dim))
