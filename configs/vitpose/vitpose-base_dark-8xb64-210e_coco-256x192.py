"""ViTPose-B with DARK (Zhang et al., CVPR 2020) instead of UDP: unbiased MSRA Gaussian targets (sigma 2) on crops
warped without UDP, decoded by the batched DARK codec (blur kernel 11), as mmpose's ``*_dark-8xb64-210e`` recipes."""
_base_ = ['./vitpose-base_8xb64-210e_coco-256x192.py']

codec = dict(type='BatchedMSRAHeatmap', input_size=(192, 256), heatmap_size=(48, 64), sigma=2, unbiased=True,
             blur_kernel_size=11)

model = dict(head=dict(decoder=dict(codec, _delete_=True)))

train_pipeline = [
    dict(type='LoadImage'),
    dict(type='GetBBoxCenterScale'),
    dict(type='RandomFlip', direction='horizontal'),
    dict(type='RandomHalfBody'),
    dict(type='RandomBBoxTransform'),
    dict(type='TopdownAffine', input_size=codec['input_size']),
    dict(type='GenerateTarget', encoder=codec),
    dict(type='PackPoseInputs')
]
val_pipeline = [
    dict(type='LoadImage'),
    dict(type='GetBBoxCenterScale'),
    dict(type='TopdownAffine', input_size=codec['input_size']),
    dict(type='PackPoseInputs')
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=val_pipeline))
test_dataloader = val_dataloader
