"""The skeleton tokenizer and the Hulk model with its skeleton-action pathway: tokenizer arithmetic, person and clip
handling, sharing, gradients, learning, predict read by mmaction2's AccMetric through its PoseDataset pipeline (on
SynthHuman clips), errors, and fidelity to the official skeleton path (tests/data/official/skeleton_action/)."""
from __future__ import annotations

import json
import os.path as osp
import re

import pytest
import torch
import torch.nn.functional as F
from mmengine.dataset import default_collate
from mmengine.registry import init_default_scope

import hulk_mm.models.tasks.skeleton_action  # noqa: F401  (registers SkeletonActionPathway)
import hulk_mm.models.tokenizers.skeleton  # noqa: F401  (registers SkeletonTokenizer)
from hulk_mm.models import Hulk, convert_official_state_dict, dropped_official_keys
from hulk_mm.models.official import unexpected_official_keys
from hulk_mm.models.positional import mae_pos_embed, resample_2d
from hulk_mm.models.tokenizers.skeleton import SkeletonTokenizer
from tests.models.official_fixture import official_layout_state_dict

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
FIXTURE = osp.join(REPO, 'tests', 'data', 'official', 'skeleton_action')
DATASETS_2 = dict(a=(0, 3), b=(3, 7))

init_default_scope('hulk_mm')


pytestmark = pytest.mark.usefixtures('one_thread')


def skeleton_cfg(num_classes=7, frames=14, width=32, datasets=DATASETS_2, text=0) -> dict:
    return dict(type='SkeletonActionPathway', num_classes=num_classes, grid=(frames // 7, 8), embed_dim=width,
                datasets=datasets, detokenizer=dict(type='SemanticDetokenizer', text_dim=16, text_features=text),
                loss_cls=dict(type='CrossEntropyLoss', _scope_='mmdet'))


def tiny_hulk(frames=14, width=32, dec_depth=2, joint_text=0, data_preprocessor=None, **pathway) -> Hulk:
    """A Hulk small enough for unit tests: 14 frames x 17 joints -> a 2x8 token grid, 7 classes in two datasets."""
    return Hulk(
        shared=dict(
            tokenizers=dict(skeleton=dict(type='SkeletonTokenizer', num_frames=frames, embed_dim=width,
                                          joint_text=joint_text)),
            encoder=dict(type='ViTEncoder', embed_dim=width, depth=1, num_heads=2),
            decoder=dict(type='HulkDecoder', embed_dim=width, depth=dec_depth, num_heads=2, ffn_dim=64),
            projections=dict(text=dict(text_dim=16))),
        tasks=dict(skeleton_action=skeleton_cfg(frames=frames, width=width, **pathway)),
        data_preprocessor=data_preprocessor)


def keypoints(n=2, clips=1, persons=2, frames=14, seed=0) -> torch.Tensor:
    """(N, clips, persons, T, 17, 3): x, y in [-1, 1] (PreNormalize2D), score in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, clips, persons, frames, 17, 2, generator=g) * 2 - 1
    return torch.cat([xy, torch.rand(n, clips, persons, frames, 17, 1, generator=g)], -1)


def action_sample(label, dataset=None):
    from mmaction.structures import ActionDataSample
    return ActionDataSample(metainfo={} if dataset is None else dict(dataset_name=dataset)).set_gt_label(label)


def two_samples():
    return [action_sample(1, 'a'), action_sample(2, 'b')]


# --------------------------------------------------------------------------------------------------------- tokenizer
def test_tokenizer_is_the_official_strided_conv_with_joint_names_and_position_table():
    torch.manual_seed(0)
    tok = SkeletonTokenizer(num_frames=14, embed_dim=8, joint_text=3)
    with torch.no_grad():
        for p in (tok.proj_kernel_weight, tok.proj_kernel_bias, tok.merge_kernel_weight, tok.merge_kernel_bias,
                  tok.norm.weight, tok.norm.bias):
            p.normal_()
    x = torch.randn(3, 14, 17, 3)
    tokens, grid = tok(x)
    assert grid == (2, 8) and tokens.shape == (3, 16, 8)
    # official: conv over (N M, C, T, V) with kernel channels [0, 1, 3], LayerNorm2d + LeakyReLU, then the joint
    # pairs (0-1, ..., 14-15) merged by a (1, 1, 2, 1) conv and added per column, then the position table
    conv = F.conv2d(x.permute(0, 3, 1, 2), tok.proj_kernel_weight[:, [0, 1, 3]], tok.proj_kernel_bias, stride=(7, 2))
    y = F.leaky_relu(F.layer_norm(conv.permute(0, 2, 3, 1), (8,), tok.norm.weight, tok.norm.bias), 0.1)
    pairs = tok.joint_text[:16].reshape(8, 2, 8)
    merged = F.conv2d(pairs.unsqueeze(1), tok.merge_kernel_weight, tok.merge_kernel_bias)  # (8, 1, 1, C)
    expected = (y + merged[:, 0, 0]).flatten(1, 2) + mae_pos_embed(8, (2, 8))
    torch.testing.assert_close(tokens, expected)
    # the depth channel (2) of the kernel is not read by 2-D data; the 17th joint falls outside the 8 pairs
    with torch.no_grad():
        tok.proj_kernel_weight[:, 2] += 1
    x2 = x.clone()
    x2[:, :, 16] += 5
    torch.testing.assert_close(tok(x2)[0], tokens)


def test_tokenizer_resamples_its_position_table_for_other_lengths():
    tok = SkeletonTokenizer(num_frames=175, embed_dim=8)
    assert tok.grid == (25, 8) and tok.pos_embed.shape == (1, 200, 8)
    torch.testing.assert_close(tok.pos_embed, mae_pos_embed(8, (25, 8)))
    x = torch.randn(1, 70, 17, 3)
    tokens, grid = tok(x)
    assert grid == (10, 8)
    without_pe = tokens - resample_2d(tok.pos_embed[0], (25, 8), (10, 8))
    with torch.no_grad():
        tok.pos_embed.zero_()
    torch.testing.assert_close(tok(x)[0], without_pe)


def test_tokenizer_rejects_bad_inputs(tmp_path):
    tok = SkeletonTokenizer(num_frames=14, embed_dim=8)
    for bad in (torch.randn(2, 14, 17, 2), torch.randn(2, 14, 25, 3), torch.randn(2, 6, 17, 3),
                torch.randn(1, 2, 14, 17, 3)):
        with pytest.raises(ValueError, match=r'expects \(B, T, 17, 3\)'):
            tok(bad)
    table = tmp_path / 'joints.pth'
    torch.save(torch.zeros(17, 768), table)
    with pytest.raises(ValueError, match=r'\(17, 768\) does not match 17 classes of width 8'):
        SkeletonTokenizer(num_frames=14, embed_dim=8, joint_text=str(table))


# --------------------------------------------------------------------------------------------------------- pathway
def test_shapes_per_stage():
    model = tiny_hulk().eval()
    kp = keypoints()
    shared, action = model.shared, model.tasks['skeleton_action']
    memory = shared.encode('skeleton', kp.flatten(0, 2))
    assert memory.shape == (4, 16, 32)
    queries = action.class_queries(shared, kp)
    assert len(queries) == 2 and all(q.shape == (2, 7, 32) for q in queries)
    outs = model({'skeleton_action': kp}, mode='tensor')
    assert len(outs) == 2 and all(o.shape == (2, 7) for o in outs)
    example = action.example_inputs(shared, 3)
    assert example.shape == (3, 1, 2, 14, 17, 3) and example[..., :2].abs().max() <= 1
    with torch.no_grad():
        torch.testing.assert_close(action.infer(shared, kp), outs[-1])


def test_persons_are_averaged_and_clips_are_independent():
    model = tiny_hulk().eval()
    kp = keypoints(n=2, clips=3)
    with torch.no_grad():
        logits = model({'skeleton_action': kp}, mode='tensor')[-1]
        swapped = model({'skeleton_action': kp.flip(2)}, mode='tensor')[-1]
        per_clip = [model({'skeleton_action': kp[:, c:c + 1]}, mode='tensor')[-1] for c in range(3)]
        # the official text projector: decoder outputs of the two persons of a clip averaged before patch_proj
        action, shared = model.tasks['skeleton_action'], model.shared
        per_person = action.decode_queries(shared, shared.encode('skeleton', kp[:1, :1].flatten(0, 2)))[-1]
        manual = action.class_logits(shared, per_person.mean(0, keepdim=True))
    assert logits.shape == (6, 7)
    torch.testing.assert_close(swapped, logits)
    torch.testing.assert_close(torch.stack(per_clip, 1).flatten(0, 1), logits)
    torch.testing.assert_close(manual, logits[:1])


def test_state_dict_has_each_shared_module_once():
    model = tiny_hulk()
    params = {name for name, _ in model.named_parameters()}
    keys = set(model.state_dict())
    assert params <= keys
    assert not any('encoder' in k or 'tokenizers' in k or 'projections' in k for k in keys if k.startswith('tasks.'))
    assert {'shared.tokenizers.skeleton.proj_kernel_weight', 'shared.tokenizers.skeleton.joint_text',
            'shared.tokenizers.skeleton.pos_embed', 'shared.tokenizers.skeleton.merge_kernel_weight',
            'tasks.skeleton_action.indicator', 'tasks.skeleton_action.query_embed_label',
            'tasks.skeleton_action.detokenizer.text_features'} <= keys


def test_pathways_of_one_task_share_the_indicator_and_all_share_the_tokenizer():
    """Release tasks 0 (NTU60/NTU120/Gym) and 1 (Diving48/UCF101/K400) are two pathways of one task group."""
    model = Hulk(shared=dict(
        tokenizers=dict(skeleton=dict(type='SkeletonTokenizer', num_frames=14, embed_dim=32)),
        encoder=dict(type='ViTEncoder', embed_dim=32, depth=1, num_heads=2),
        decoder=dict(type='HulkDecoder', embed_dim=32, depth=1, num_heads=2, ffn_dim=64),
        projections=dict(text=dict(text_dim=16))),
        tasks=dict(skeleton_action_ntu=skeleton_cfg(), skeleton_action_k400=skeleton_cfg(num_classes=5, datasets=None)))
    ntu, k400 = model.tasks['skeleton_action_ntu'], model.tasks['skeleton_action_k400']
    assert ntu.indicator is k400.indicator and ntu.detokenizer is not k400.detokenizer
    with torch.no_grad():
        assert model({'skeleton_action_k400': keypoints()}, mode='tensor')[-1].shape == (2, 5)


def test_one_loss_step_reaches_every_parameter():
    model = tiny_hulk().train()
    with torch.no_grad():  # the official all-ones kernel gives channel-constant features; break the tie for the test
        model.shared.tokenizers['skeleton'].proj_kernel_weight.normal_()
    losses = model({'skeleton_action': keypoints()}, {'skeleton_action': two_samples()}, mode='loss')
    assert set(losses) == {'skeleton_action.loss_cls', 'skeleton_action.acc_top1'}
    model.parse_losses(losses)[0].backward()
    missing = [n for n, p in model.named_parameters()
               if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0) and 'adapt_pos' not in n]
    assert not missing, missing


def test_loss_targets_are_global_class_indices():
    model = tiny_hulk()
    action = model.tasks['skeleton_action']
    captured = {}
    action.loss_cls.forward = lambda logits, labels: captured.setdefault('labels', labels).sum().float()
    model({'skeleton_action': keypoints(clips=2)}, {'skeleton_action': two_samples()}, mode='loss')
    assert captured['labels'].tolist() == [1, 1, 5, 5]  # 'b' starts at class 3; one target per clip


def test_loss_decreases_when_overfitting_a_batch():
    torch.manual_seed(0)
    model = tiny_hulk().train()
    kp = keypoints()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    history = []
    for _ in range(25):
        losses = model({'skeleton_action': kp}, {'skeleton_action': two_samples()}, mode='loss')
        loss, _ = model.parse_losses(losses)
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(loss.item())
    assert history[-1] < 0.3 * history[0], history
    assert losses['skeleton_action.acc_top1'].item() == 1.0


def test_predict_averages_clip_probabilities_over_the_dataset_columns():
    model = tiny_hulk().eval()
    action = model.tasks['skeleton_action']
    logits = torch.randn(4, 7)
    action.class_logits = lambda shared, queries: logits
    with torch.no_grad():
        results = model({'skeleton_action': keypoints(clips=2)}, {'skeleton_action': two_samples()}, mode='predict')
    expected_a = logits[:2, :3].softmax(-1).mean(0)
    expected_b = logits[2:, 3:].softmax(-1).mean(0)
    torch.testing.assert_close(results[0].pred_score, expected_a)
    torch.testing.assert_close(results[1].pred_score, expected_b)
    assert results[1].pred_label.tolist() == [int(expected_b.argmax())]


@pytest.fixture(scope='module')
def synth_clips(tmp_path_factory):
    from hulk_mm.datasets.synthetic import generate
    from hulk_mm.datasets.synthetic.writers.skeleton_action import ANN_FILE
    root = str(tmp_path_factory.mktemp('synthhuman_skeleton'))
    generate(root, num_train=2, num_val=4, seed=0, tasks=['skeleton_action'], progress=False)
    return osp.join(root, ANN_FILE)


def test_mmaction_pose_pipeline_to_acc_metric(synth_clips):
    """mmaction2's PoseDataset pipeline (FormatGCNInput + PackActionInputs), default_collate and a plain
    BaseDataPreprocessor feed the pathway; its predictions are what AccMetric reads."""
    from mmaction.datasets import PoseDataset
    from mmaction.evaluation import AccMetric
    from mmaction.registry import TRANSFORMS
    from hulk_mm.datasets.synthetic.actions import ACTION_CLASSES
    pipeline = [dict(type='PreNormalize2D'), dict(type='GenSkeFeat', dataset='coco', feats=['j']),
                dict(type='UniformSampleFrames', clip_len=14, test_mode=True), dict(type='PoseDecode'),
                dict(type='FormatGCNInput', num_person=2), dict(type='PackActionInputs')]
    dataset = PoseDataset(ann_file=synth_clips, split='val', test_mode=True,
                          pipeline=[TRANSFORMS.build(dict(cfg, _scope_='mmaction')) for cfg in pipeline])
    num = len(ACTION_CLASSES)
    model = tiny_hulk(num_classes=num + 2, datasets=dict(synthhuman=(2, 2 + num)),
                      data_preprocessor=dict(type='HulkDataPreprocessor',
                                             tasks=dict(skeleton_action=dict(type='BaseDataPreprocessor')))).eval()
    batch = default_collate([dataset[i] for i in range(len(dataset))])
    assert batch['inputs'].shape == (len(dataset), 1, 2, 14, 17, 3)
    results = model.test_step(batch)
    metric = AccMetric(prefix='skeleton_action.synthhuman')
    metric.process(None, [r.to_dict() for r in results])
    metrics = metric.evaluate(len(results))
    assert 0.0 <= metrics['skeleton_action.synthhuman/top1'] <= 1.0
    assert all(r.pred_score.shape == (num,) and 0 <= int(r.pred_label) < num for r in results)
    train = model.data_preprocessor(batch, True)
    losses = model(**train, mode='loss')
    assert torch.isfinite(losses['skeleton_action.loss_cls'])


def test_bad_inputs_give_clear_errors():
    model = tiny_hulk().eval()
    with pytest.raises(ValueError, match=r'\(N, clips, persons, 14, V, 3\).*fixed 2x8 token grid'):
        model({'skeleton_action': keypoints(frames=21)}, mode='tensor')
    with pytest.raises(ValueError, match=r'\(N, clips, persons, 14, V, 3\)'):
        model({'skeleton_action': keypoints()[:, 0]}, mode='tensor')
    with pytest.raises(KeyError, match='without metainfo dataset_name'):
        model({'skeleton_action': keypoints(n=1)}, {'skeleton_action': [action_sample(0)]}, mode='predict')
    with pytest.raises(KeyError, match="no 'skeleton' tokenizer; it has \\['image'\\]"):
        Hulk(shared=dict(tokenizers=dict(image=dict(type='ImageTokenizer', img_size=None, patch_size=8,
                                                    embed_dim=32)),
                         encoder=dict(type='ViTEncoder', embed_dim=32, depth=1, num_heads=2),
                         decoder=dict(type='HulkDecoder', embed_dim=32, depth=1, num_heads=2, ffn_dim=64),
                         projections=dict(text=dict(text_dim=16))),
             tasks=dict(skeleton_action=skeleton_cfg()))({'skeleton_action': keypoints()}, mode='tensor')


# ----------------------------------------------------------------------------------------------------------------
# Fidelity to the official skeleton path. The fixture holds inputs, the official outputs and the official key list;
# the weights are regenerated from a seed (README in tests/data/official/skeleton_action/).
# ----------------------------------------------------------------------------------------------------------------
def seeded_inputs(meta: dict, seed: int = 2):
    """The fixture's inputs, regenerated: keypoints (B, 1, 2, T, 17, 3) (x, y uniform in [-1, 1], score in [0, 1];
    sample 1's second person zero, as FormatGCNInput pads a one-person clip) and, per sample, a class index within
    its dataset (sample i belongs to the i-th dataset of ``meta['datasets']``, cyclically)."""
    g = torch.Generator().manual_seed(seed)
    b, t = meta['B'], meta['T']
    xy = torch.rand(b, 1, 2, t, 17, 2, generator=g) * 2 - 1
    kp = torch.cat([xy, torch.rand(b, 1, 2, t, 17, 1, generator=g)], -1)
    if b > 1:
        kp[1, :, 1] = 0
    names = list(meta['datasets'])
    names = [names[i % len(names)] for i in range(b)]
    labels = [int(torch.randint(0, meta['datasets'][n][1] - meta['datasets'][n][0], (1,), generator=g))
              for n in names]
    return kp, labels, names


def fixture_model(meta: dict) -> Hulk:
    (de, depth, heads), (d, dheads, ffn) = meta['enc'], meta['dec']
    return Hulk(
        shared=dict(tokenizers=dict(skeleton=dict(type='SkeletonTokenizer', num_frames=meta['T'], embed_dim=de)),
                    encoder=dict(type='ViTEncoder', embed_dim=de, depth=depth, num_heads=heads),
                    decoder=dict(type='HulkDecoder', embed_dim=d, depth=9, num_heads=dheads, ffn_dim=ffn),
                    projections=dict(text=dict(text_dim=meta['text_dim']))),
        tasks=dict(skeleton_action=dict(
            type='SkeletonActionPathway', num_classes=meta['L'], grid=(meta['T'] // 7, 8), embed_dim=d,
            datasets=meta['datasets'], detokenizer=dict(type='SemanticDetokenizer', text_dim=meta['text_dim']),
            loss_cls=dict(type='CrossEntropyLoss', _scope_='mmdet'))))


def converted_model(meta: dict) -> Hulk:
    model = fixture_model(meta)
    official = official_layout_state_dict(meta['keys'], meta['seed'])
    model.load_state_dict(convert_official_state_dict(official, 'skeleton_action'), strict=True)
    return model


def run_fixture(model, kp, labels, names):
    samples = [action_sample(lab, n) for lab, n in zip(labels, names)]
    model.eval()
    with torch.no_grad():
        logits = model({'skeleton_action': kp}, mode='tensor')[-1]
        loss = model({'skeleton_action': kp}, {'skeleton_action': samples}, mode='loss')['skeleton_action.loss_cls']
    return logits, loss


def test_converted_official_weights_reproduce_official_skeleton_outputs():
    with open(osp.join(FIXTURE, 'official_keys.json')) as f:
        meta = json.load(f)
    io = torch.load(osp.join(FIXTURE, 'skeleton_action_tiny_io.pth'), weights_only=True)
    kp, labels, names = seeded_inputs(meta)
    assert torch.equal(kp, io['inputs']) and labels == io['labels'] and names == io['dataset_names']
    logits, loss = run_fixture(converted_model(meta), kp, labels, names)
    assert (logits - io['logits']).abs().max() <= 1e-4 * io['logits'].abs().max()
    torch.testing.assert_close(loss, io['loss'], rtol=1e-5, atol=0)


def test_converter_drops_exactly_the_dead_official_keys():
    """Spec §8.2: the label-side text tokenizer, neck_label, the skeleton patch projector (proj_sparse_labeling),
    the unused decoder heads and the encoder's empty global tokens are dead; the skeleton tokenizer
    (adapter_sparse_labeling) and everything else is mapped."""
    with open(osp.join(FIXTURE, 'official_keys.json')) as f:
        keys = dict(json.load(f)['keys'])
    dead = re.compile(r'^(adapter_text\.|neck_label\.|proj_sparse_labeling\.|backbone_module\.global_tokens$|'
                      r'decoder_module\.predictor\.(level_embed|class_embed|mask_embed)\.)')
    official = {k: torch.empty(0) for k in keys}
    assert sorted(dropped_official_keys(official, 'skeleton_action')) == sorted(k for k in keys if dead.match(k))
    assert unexpected_official_keys(official, 'skeleton_action') == []


@pytest.mark.slow
def test_full_size_converted_weights_reproduce_official_skeleton_outputs():
    """ViT-B (768 x 12), decoder 256 x 9, 175 frames x 17 joints x 2 persons, 279 classes, batch 1; the official
    outputs summarised."""
    with open(osp.join(FIXTURE, 'official_full.json')) as f:
        meta = json.load(f)
    kp, labels, names = seeded_inputs(meta)
    logits, loss = run_fixture(converted_model(meta), kp, labels, names)
    assert list(logits.shape) == meta['logits_shape']
    flat = logits.flatten()
    scale = meta['logits_absmax']
    assert abs(flat.abs().max().item() - scale) <= 1e-4 * scale
    assert abs(flat.sum().item() - meta['logits_sum']) <= 1e-4 * scale * flat.numel() ** 0.5
    assert (flat[meta['sample_index']] - torch.tensor(meta['sample_values'])).abs().max() <= 1e-4 * scale
    assert abs(loss.item() - meta['loss']) <= 1e-5 * abs(meta['loss'])
