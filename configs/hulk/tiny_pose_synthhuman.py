"""Hulk, tiny, pose only: the Hulk model (shared tokenizer / encoder / neck / decoder + the pose pathway) on
SynthHuman's COCO-17 keypoints, small enough to train on a 2-core CPU.

Same structure as the release (9-layer post-norm decoder, full attention, PE on q/k per layer, semantic
de-tokenizer, x4 upsampler, deep supervision on all layers), narrower: encoder width 128 x 4 blocks, decoder width
128. 128x96 crops cut into 8x8 patches give the release's 16x12 token grid, so the heatmaps are 64x48 (x4 the
grid) at stride 2. The keypoint-name table is a seeded stand-in of width 384 (no text model runs at build time).
"""
_base_ = [
    '../_base_/default_runtime.py', '../_base_/datasets/synthhuman_pose.py', '../_base_/schedules/cpu_1500it.py'
]

grid = (16, 12)  # (h, w) token grid of the base's 128x96 crops cut into 8x8 patches; heatmaps are 4 x grid
encoder_dim, decoder_dim = 128, 128

# Per-joint positive ratios of Hulk's COCO visibility loss (Hulk_vit-B.yaml, task 8 `sample_weight`).
coco_visible_ratios = [
    0.38647058, 0.33606767, 0.33835369, 0.29253424, 0.29636332, 0.4987484, 0.49978854, 0.39467358, 0.40091822,
    0.36039853, 0.36918446, 0.43343303, 0.4345989, 0.32999829, 0.33092793, 0.27714171, 0.27754939
]

model = dict(
    type='Hulk',
    data_preprocessor=dict(
        type='HulkDataPreprocessor',
        # pixels stay 0-255: the image tokenizer normalises, as in Hulk
        tasks=dict(pose=dict(type='PoseDataPreprocessor', bgr_to_rgb=True, _scope_='mmpose'))),
    shared=dict(
        tokenizers=dict(image=dict(type='ImageTokenizer', img_size=None, patch_size=8, embed_dim=encoder_dim)),
        encoder=dict(type='ViTEncoder', embed_dim=encoder_dim, depth=4, num_heads=4, drop_path_rate=0.1),
        decoder=dict(type='HulkDecoder', embed_dim=decoder_dim, depth=9, num_heads=4, ffn_dim=512),
        projections=dict(dense=dict(text_dim=384))),
    tasks=dict(
        pose=dict(
            type='PosePathway',
            num_keypoints=17,
            grid=grid,
            embed_dim=decoder_dim,
            detokenizer=dict(type='HeatmapDetokenizer', text_dim=384, text_features=0, upsample_dim=128),
            codec={{_base_.codec}},
            loss_kpt=dict(type='KeypointMSELoss', use_target_weight=True, _scope_='mmpose'),
            loss_vis=dict(type='VisibilityBCELoss', ratios=coco_visible_ratios, loss_weight=0.001),
            flip_test=True,
            shift_heatmap=False)),
    task_weights=dict(pose=1.0))

# A pose-only model leaves the decoder's shared `adapt_pos1d` (the mesh task's depth PE) without gradient, so DDP
# must be told; the multi-task model uses every parameter and needs no such flag.
model_wrapper_cfg = dict(type='MMDistributedDataParallel', find_unused_parameters=True)

default_hooks = dict(checkpoint=dict(interval=500), logger=dict(interval=50))
