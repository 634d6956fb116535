# SynthHuman 2-D pose in COCO-17 format through mmpose's own CocoDataset, pipeline and CocoMetric.
# `--cfg-options data_root=DIR` re-roots every path below (see hulk_mm.engine.launch).
data_root = 'data/synthhuman/'
input_size = (96, 128)  # (w, h) of the person crop
heatmap_size = (48, 64)  # (w, h): 4 x the 16 x 12 token grid of 8 x 8 patches, as ViTPose / Hulk at 256 x 192
# UDP heatmaps decoded by DARK-UDP (blur kernel 11, as Hulk) with the batched codec of hulk_mm.codecs
codec = dict(type='BatchedUDPHeatmap', input_size=input_size, heatmap_size=heatmap_size, sigma=2, blur_kernel_size=11)

train_pipeline = [
    dict(type='LoadImage'),
    dict(type='GetBBoxCenterScale'),
    dict(type='RandomFlip', direction='horizontal'),
    dict(type='RandomBBoxTransform', scale_factor=(0.8, 1.2), rotate_factor=30),
    dict(type='TopdownAffine', input_size=input_size, use_udp=True),
    dict(type='GenerateTarget', encoder=codec),
    dict(type='PackPoseInputs'),
]
val_pipeline = [
    dict(type='LoadImage'),
    dict(type='GetBBoxCenterScale'),
    dict(type='TopdownAffine', input_size=input_size, use_udp=True),
    dict(type='PackPoseInputs'),
]

train_dataloader = dict(
    batch_size=16,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),  # iteration-based schedules
    dataset=dict(
        _scope_='mmpose',
        type='CocoDataset',
        data_root=data_root,
        data_mode='topdown',
        ann_file='pose/person_keypoints_train.json',
        data_prefix=dict(img='images/train/'),
        pipeline=train_pipeline,
    ))
val_dataloader = dict(
    batch_size=16,
    num_workers=0,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),
    dataset=dict(
        _scope_='mmpose',
        type='CocoDataset',
        data_root=data_root,
        data_mode='topdown',
        ann_file='pose/person_keypoints_val.json',
        bbox_file=data_root + 'pose/person_detections_val.json',
        data_prefix=dict(img='images/val/'),
        test_mode=True,
        pipeline=val_pipeline,
    ))
test_dataloader = val_dataloader

val_evaluator = dict(
    _scope_='mmpose', type='CocoMetric', ann_file=data_root + 'pose/person_keypoints_val.json',
    prefix='pose.synthhuman')
test_evaluator = val_evaluator
