"""ViTPose-H, classic decoder (mmpose's ``td-hm_ViTPose-huge``): ViT-H (width 1280, 32 blocks, 16 heads), drop path
0.55, layer decay 0.85 over 32 + 2 layers; MAE ``mae_pretrain_vit_huge.pth`` init (MAE's ViT-H/14 does not fit
16x16 patches; ViTPose pretrained its own ViT-H/16)."""
_base_ = ['./vitpose-base_8xb64-210e_coco-256x192.py']

embed_dim = 1280
optim_wrapper = dict(paramwise_cfg=dict(num_layers=34, layer_decay_rate=0.85))
model = dict(
    backbone=dict(
        tokenizer=dict(embed_dim=embed_dim),
        encoder=dict(depth=32, num_heads=16, drop_path_rate=0.55),
        init_cfg=dict(checkpoint='data/pretrained/mae_pretrain_vit_huge.pth')),
    head=dict(in_channels=embed_dim))
