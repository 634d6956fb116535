"""ViTPose-B (Xu et al., 2022), classic decoder, COCO 256x192: mmpose's recipe
(``td-hm_ViTPose-base_8xb64-210e_coco-256x192.py``) with hulk_mm's image tokenizer + ViT encoder as the backbone.

The backbone is ViTPose's ViT-B: 16x16 patches from a patch convolution padded by 2 px, a learned position table
(started from MAE's sin-cos grid; ViTPose's extra CLS slot, which it adds to every token, is folded into the
table by ``tools/model_converters/vitpose_official_to_mm.py``), no type embedding, 12 blocks of width 768,
drop path 0.3. Pixels are normalised inside the tokenizer, so the data preprocessor only converts BGR to RGB.
Head: two 4x4 deconvolutions (256 channels, BN, ReLU) and a 1x1 conv; MSE on UDP Gaussian heatmaps (sigma 2); flip
test averaging heatmaps; DARK-UDP decoding (kernel 11) by the batched codec. AdamW 5e-4, weight decay 0.1, layer
decay 0.75, 210 epochs at 8 x 64 images.

Pretrained: MAE's ``mae_pretrain_vit_base.pth`` (https://dl.fbaipublicfiles.com/mae/pretrain/) in data/pretrained/.
Official ViTPose weights: ``python tools/model_converters/vitpose_official_to_mm.py vitpose-b.pth OUT.pth --config
<this file>``. The other sizes, the simple decoder and DARK inherit from this file.
"""
_base_ = ['../_base_/default_runtime.py']

custom_imports = dict(imports=['hulk_mm', 'hulk_mm.codecs'], allow_failed_imports=False)

# runtime: mmpose's epoch-based ViTPose schedule
train_cfg = dict(by_epoch=True, max_epochs=210, val_interval=10)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
log_processor = dict(by_epoch=True)
default_hooks = dict(
    checkpoint=dict(by_epoch=True, interval=10, save_best='pose.coco/AP', rule='greater', max_keep_ckpts=1))

# optimizer: ViTPose's layer-wise decay. num_layers = depth + 2 gives mmpose's multipliers: block i x rate^(depth - i),
# the tokenizer (patch embedding, position table) x rate^(depth + 1), the head x 1; no weight decay for biases,
# norms and the position table.
optim_wrapper = dict(
    constructor='HulkLayerDecayOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=5e-4, betas=(0.9, 0.999), weight_decay=0.1),
    paramwise_cfg=dict(num_layers=14, layer_decay_rate=0.75),
    clip_grad=dict(max_norm=1., norm_type=2))
param_scheduler = [
    dict(type='LinearLR', begin=0, end=500, start_factor=0.001, by_epoch=False),  # warm-up
    dict(type='MultiStepLR', begin=0, end=210, milestones=[170, 200], gamma=0.1, by_epoch=True)
]
auto_scale_lr = dict(base_batch_size=512)

# codec: UDP heatmaps; the batched codec decodes with DARK-UDP on the model's device
codec = dict(type='BatchedUDPHeatmap', input_size=(192, 256), heatmap_size=(48, 64), sigma=2, blur_kernel_size=11)

embed_dim = 768
model = dict(
    _scope_='mmpose',
    type='TopdownPoseEstimator',
    data_preprocessor=dict(type='PoseDataPreprocessor', bgr_to_rgb=True),  # mean/std: in the tokenizer
    backbone=dict(
        type='hulk_mm.HulkEncoder',
        tokenizer=dict(img_size=(256, 192), patch_size=16, embed_dim=embed_dim, patch_padding=2,
                       learned_pos_embed=True, type_embed=False),
        encoder=dict(depth=12, num_heads=12, drop_path_rate=0.3),
        init_cfg=dict(type='Pretrained', checkpoint='data/pretrained/mae_pretrain_vit_base.pth')),
    head=dict(
        type='HeatmapHead',
        in_channels=embed_dim,
        out_channels=17,
        deconv_out_channels=(256, 256),
        deconv_kernel_sizes=(4, 4),
        loss=dict(type='KeypointMSELoss', use_target_weight=True),
        decoder=codec),
    test_cfg=dict(flip_test=True, flip_mode='heatmap', shift_heatmap=False))

# data: COCO train2017 / val2017 with the AP 56.4 person detections, mmpose's pipelines
data_root = 'data/coco/'
train_pipeline = [
    dict(type='LoadImage'),
    dict(type='GetBBoxCenterScale'),
    dict(type='RandomFlip', direction='horizontal'),
    dict(type='RandomHalfBody'),
    dict(type='RandomBBoxTransform'),
    dict(type='TopdownAffine', input_size=codec['input_size'], use_udp=True),
    dict(type='GenerateTarget', encoder=codec),
    dict(type='PackPoseInputs')
]
val_pipeline = [
    dict(type='LoadImage'),
    dict(type='GetBBoxCenterScale'),
    dict(type='TopdownAffine', input_size=codec['input_size'], use_udp=True),
    dict(type='PackPoseInputs')
]
train_dataloader = dict(
    batch_size=64,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        _scope_='mmpose',
        type='CocoDataset',
        data_root=data_root,
        data_mode='topdown',
        ann_file='annotations/person_keypoints_train2017.json',
        data_prefix=dict(img='train2017/'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=32,
    num_workers=4,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),
    dataset=dict(
        _scope_='mmpose',
        type='CocoDataset',
        data_root=data_root,
        data_mode='topdown',
        ann_file='annotations/person_keypoints_val2017.json',
        bbox_file=data_root + 'person_detection_results/COCO_val2017_detections_AP_H_56_person.json',
        data_prefix=dict(img='val2017/'),
        test_mode=True,
        pipeline=val_pipeline))
test_dataloader = val_dataloader

val_evaluator = dict(
    _scope_='mmpose', type='CocoMetric', ann_file=data_root + 'annotations/person_keypoints_val2017.json',
    prefix='pose.coco')
test_evaluator = val_evaluator
