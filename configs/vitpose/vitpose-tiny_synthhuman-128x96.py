"""ViTPose baseline, tiny: Hulk's image tokenizer + a narrow ViT encoder + mmpose's HeatmapHead, on SynthHuman.

Small enough to train on a 2-core CPU in minutes: 4 blocks of width 128; 128x96 crops cut into 8x8 patches, so
the token grid is ViTPose's 16x12 and two deconvolutions give its 64x48 heatmaps. It is the smoke job of
`make quickstart` until the Hulk model lands, and the model the stack tests train, resume and evaluate on 1 and
2 ranks.
"""
_base_ = [
    '../_base_/default_runtime.py', '../_base_/datasets/synthhuman_pose.py', '../_base_/schedules/cpu_1500it.py'
]

custom_imports = dict(imports=['hulk_mm', 'hulk_mm.codecs'], allow_failed_imports=False)  # the batched codec

embed_dim = 128
model = dict(
    _scope_='mmpose',
    type='TopdownPoseEstimator',
    # pixels are normalised by the image tokenizer, as in Hulk
    data_preprocessor=dict(type='PoseDataPreprocessor', bgr_to_rgb=True),
    backbone=dict(
        type='hulk_mm.HulkEncoder',
        tokenizer=dict(img_size=(128, 96), patch_size=8, embed_dim=embed_dim),
        encoder=dict(depth=4, num_heads=4, drop_path_rate=0.1)),
    head=dict(
        type='HeatmapHead',
        in_channels=embed_dim,
        out_channels=17,
        deconv_out_channels=(64, 64),
        deconv_kernel_sizes=(4, 4),
        loss=dict(type='KeypointMSELoss', use_target_weight=True),
        decoder={{_base_.codec}}),
    test_cfg=dict(flip_test=True, flip_mode='heatmap', shift_heatmap=False))

default_hooks = dict(checkpoint=dict(interval=500), logger=dict(interval=50))
