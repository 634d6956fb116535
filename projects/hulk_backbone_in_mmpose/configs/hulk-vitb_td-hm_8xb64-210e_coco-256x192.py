# mmpose's own ViTPose-B recipe, with Hulk's image tokenizer + ViT-B encoder as the backbone.
# Everything else (COCO data, UDP codec, HeatmapHead, CocoMetric, schedule) is inherited from mmpose unchanged.
_base_ = ['mmpose::body_2d_keypoint/topdown_heatmap/coco/td-hm_ViTPose-base_8xb64-210e_coco-256x192.py']

custom_imports = dict(imports=['hulk_mm'], allow_failed_imports=False)

model = dict(
    # Hulk's tokenizer normalises pixels itself, so the preprocessor only converts BGR to RGB.
    data_preprocessor=dict(_delete_=True, type='PoseDataPreprocessor', bgr_to_rgb=True),
    backbone=dict(
        _delete_=True,
        type='hulk_mm.HulkEncoder',
        tokenizer=dict(img_size=(256, 192), patch_size=16, embed_dim=768),
        encoder=dict(depth=12, num_heads=12, drop_path_rate=0.3)))

# mmpose's LayerDecayOptimWrapperConstructor reads mmpretrain parameter names (backbone.layers.N); with timm names
# (backbone.encoder.blocks.N) it would put every block in the last group, so plain AdamW is used here.
optim_wrapper = dict(
    _delete_=True,
    optimizer=dict(type='AdamW', lr=5e-4, betas=(0.9, 0.999), weight_decay=0.1),
    clip_grad=dict(max_norm=1., norm_type=2))
