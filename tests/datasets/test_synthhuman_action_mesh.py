"""SynthHuman ``skeleton_action`` and ``mesh``: mmaction2's PoseDataset and AccMetric read the clips, the body
mesh stands in for SMPL's assets (hierarchy, regressor, adjacency), crops and cameras are consistent, and
HumanMeshDataset / MeshMetric read and score the mesh files."""
import os.path as osp
import pickle

import cv2
import numpy as np
import pytest
import torch

from hulk_mm.datasets.synthetic import generate, generate_scene, scene_rng
from hulk_mm.datasets.synthetic.actions import ACTION_CLASSES, animate
from hulk_mm.datasets.synthetic.body import (POINT_INDEX, POINT_NAMES, forward_kinematics, project, sample_pose,
                                             sample_shape)
from hulk_mm.datasets.synthetic.mesh_model import MESH_JOINTS, PART_NAMES, BodyMesh, joints_from_points
from hulk_mm.datasets.synthetic.render import person_primitives, rasterise
from hulk_mm.datasets.synthetic.writers import mesh as mesh_writer
from hulk_mm.datasets.synthetic.writers.skeleton_action import clip_label, sample_clip
from hulk_mm.registry import DATASETS, METRICS

NUM_TRAIN, NUM_VAL, SEED = 20, 10, 0
TASKS = ['skeleton_action', 'mesh']
ANN_FILE = 'skeleton_action/synthhuman_2d.pkl'
MESH_FILES = ('mesh/body_model.npz', 'mesh/train.npz', 'mesh/val.npz')


@pytest.fixture(scope='session')
def synth(tmp_path_factory):
    """(root, manifest) of a small SynthHuman set with the two tasks."""
    root = str(tmp_path_factory.mktemp('synthhuman_action_mesh'))
    return root, generate(root, NUM_TRAIN, NUM_VAL, SEED, tasks=TASKS, progress=False)


@pytest.fixture(scope='module')
def body_mesh():
    return BodyMesh()


def _pickle(root):
    with open(osp.join(root, ANN_FILE), 'rb') as f:
        return pickle.load(f)


def _npz(root, name):
    with np.load(osp.join(root, name)) as npz:
        return {k: npz[k] for k in npz.files}


def _read(root, name):
    with open(osp.join(root, name), 'rb') as f:
        return f.read()


# ------------------------------------------------------------------------------------------ skeleton action


def test_pickle_format(synth):
    root, manifest = synth
    entry = manifest['files']['skeleton_action'][ANN_FILE]
    assert entry['classes'] == list(ACTION_CLASSES) and len(ACTION_CLASSES) >= 8
    data = _pickle(root)
    assert set(data['split']) == {'train', 'val'}
    assert [len(data['split'][s]) for s in ('train', 'val')] == [NUM_TRAIN, NUM_VAL]
    names = [a['frame_dir'] for a in data['annotations']]
    assert len(set(names)) == len(names) and set(names) == set(data['split']['train'] + data['split']['val'])
    missing_seen = False
    for ann in data['annotations']:
        kp, score = ann['keypoint'], ann['keypoint_score']
        m, t = kp.shape[:2]
        assert kp.dtype == score.dtype == np.float32
        assert kp.shape == (m, t, 17, 2) and score.shape == (m, t, 17) and m in (1, 2) and 48 <= t <= 100
        assert ann['total_frames'] == t and ann['img_shape'] == ann['original_shape'] == (1080, 1920)
        assert 0 <= ann['label'] < len(ACTION_CLASSES)
        assert ((score >= 0) & (score <= 1)).all()
        absent = score == 0
        assert (kp[absent] == 0).all()
        present = kp[~absent]
        assert (present >= 0).all() and (present[:, 0] <= 1919).all() and (present[:, 1] <= 1079).all()
        missing_seen |= bool(absent.any())
    assert missing_seen


def test_labels_balanced(synth):
    root, manifest = synth
    data = _pickle(root)
    labels = {a['frame_dir']: a['label'] for a in data['annotations']}
    for split, n in (('train', NUM_TRAIN), ('val', NUM_VAL)):
        counts = np.bincount([labels[f] for f in data['split'][split]], minlength=len(ACTION_CLASSES))
        assert counts.max() - counts.min() <= 1 and counts.sum() == n
        assert manifest['files']['skeleton_action'][ANN_FILE]['labels'][split] == counts.tolist()
    assert (np.bincount([labels[f] for f in data['split']['train']]) > 0).all()  # every class in train
    # Labels are not a fixed cycle of the index.
    assert [clip_label(SEED, 'train', i) for i in range(10)] != [clip_label(SEED, 'train', i) for i in range(10, 20)]


def _pose_dataset(root, split):
    # mmaction.models does not import in this stack (a missing localizer module), so no register_all_modules:
    # the transforms are built from mmaction's registry, in its scope whatever the current default scope is.
    from mmaction.datasets import PoseDataset
    from mmaction.registry import TRANSFORMS
    pipeline = [dict(type='PreNormalize2D'), dict(type='GenSkeFeat', dataset='coco', feats=['j']),
                dict(type='UniformSampleFrames', clip_len=32, test_mode=split == 'val'), dict(type='PoseDecode'),
                dict(type='FormatGCNInput', num_person=2), dict(type='PackActionInputs')]
    return PoseDataset(ann_file=osp.join(root, ANN_FILE), split=split, test_mode=split == 'val',
                       pipeline=[TRANSFORMS.build(dict(cfg, _scope_='mmaction')) for cfg in pipeline])


def test_mmaction_pose_dataset_and_acc_metric(synth):
    from mmaction.evaluation import AccMetric
    root, _ = synth
    train, val = _pose_dataset(root, 'train'), _pose_dataset(root, 'val')
    assert (len(train), len(val)) == (NUM_TRAIN, NUM_VAL)
    for ds in (train, val):
        item = ds[0]
        assert tuple(item['inputs'].shape) == (1, 2, 32, 17, 3)
        assert item['data_samples'].gt_label.item() == ds.get_data_info(0)['label']

    labels = [val.get_data_info(i)['label'] for i in range(len(val))]
    num = len(ACTION_CLASSES)
    for shift, expected in ((0, 1.0), (1, 0.0)):
        metric = AccMetric()
        samples = [dict(pred_score=torch.eye(num)[(label + shift) % num], gt_label=torch.tensor([label]))
                   for label in labels]
        metric.process(None, samples)
        assert metric.compute_metrics(metric.results)['top1'] == expected


def test_animation_batches_the_body_model():
    """``animate`` runs the kinematics on all frames at once; that equals frame-by-frame kinematics."""
    rng = np.random.default_rng(0)
    shape, poses, yaws = sample_shape(rng), np.stack([sample_pose(rng) for _ in range(6)]), rng.uniform(-3, 3, 6)
    roots = rng.normal(size=(6, 3))
    batched = forward_kinematics(shape, poses, roots, yaws)
    single = np.stack([forward_kinematics(shape, p, r, y) for p, r, y in zip(poses, roots, yaws)])
    np.testing.assert_allclose(batched, single, atol=1e-12)
    points = animate(rng, 'jump', 50, shape, (0.5, 4.0), 0.3)
    assert points.shape == (50, len(POINT_NAMES), 3) and np.isfinite(points).all()
    with pytest.raises(ValueError, match="'dance'.*walk"):
        animate(rng, 'dance', 10, shape, (0.0, 4.0), 0.0)


def _motion_features(keypoint, score, samples=12):
    """Actor's joints relative to their mean position over the clip, normalised by the actor's height: the
    positions at ``samples`` frames and each joint's spread over time (missing joints count as 0)."""
    kp, w = keypoint[0].astype(np.float64), (score[0] > 0)[..., None].astype(np.float64)
    center = (kp * w).sum((0, 1)) / w.sum()
    scale = np.ptp(kp[score[0] > 0][:, 1])
    rel = w * (kp - center) / scale
    mean = rel.sum(0) / np.maximum(w.sum(0), 1)
    spread = np.sqrt((w * (rel - mean) ** 2).sum(0) / np.maximum(w.sum(0), 1))
    frames = np.linspace(0, len(kp) - 1, samples).round().astype(int)
    return np.concatenate([rel[frames].ravel(), spread.ravel()])


def test_actions_distinguishable_but_not_trivial():
    """A nearest-centroid classifier on normalised joint motion beats chance (10 %) by a wide margin."""
    clips = {}
    for split, count in (('train', 80), ('val', 40)):
        labels = [clip_label(SEED, split, i) for i in range(count)]
        feats = [_motion_features(*sample_clip(np.random.default_rng([SEED, 7, i, len(split)]), label))
                 for i, label in enumerate(labels)]
        clips[split] = (np.array(feats), np.array(labels))
    (x_train, y_train), (x_val, y_val) = clips['train'], clips['val']
    mean, std = x_train.mean(0), x_train.std(0) + 1e-6
    x_train, x_val = (x_train - mean) / std, (x_val - mean) / std
    centroids = np.stack([x_train[y_train == c].mean(0) for c in range(len(ACTION_CLASSES))])
    pred = ((x_val[:, None] - centroids[None]) ** 2).sum(-1).argmin(1)
    accuracy = (pred == y_val).mean()
    assert 0.35 <= accuracy < 1.0, accuracy


# ------------------------------------------------------------------------------------------------- mesh


def test_body_model_assets(synth):
    root, manifest = synth
    bm = _npz(root, 'mesh/body_model.npz')
    v, vi, vc = (len(bm[k]) for k in ('template', 'template_intermediate', 'template_coarse'))
    assert manifest['files']['mesh']['mesh/body_model.npz']['vertices'] == dict(fine=v, intermediate=vi, coarse=vc)
    assert 1500 <= v <= 2600 and 400 <= vi <= 600 and 100 <= vc <= 150
    assert tuple(bm['joint_names']) == MESH_JOINTS and tuple(bm['part_names']) == PART_NAMES
    for key, shape in (('upsample_intermediate_to_fine', (v, vi)), ('upsample_coarse_to_intermediate', (vi, vc)),
                       ('downsample_fine_to_intermediate', (vi, v)), ('downsample_intermediate_to_coarse', (vc, vi)),
                       ('joint_regressor', (14, v)), ('adjacency_coarse', (vc, vc)), ('template_joints', (14, 3))):
        assert bm[key].shape == shape, key
    for key in ('upsample_intermediate_to_fine', 'upsample_coarse_to_intermediate', 'downsample_fine_to_intermediate',
                'downsample_intermediate_to_coarse', 'joint_regressor', 'skin_weights'):
        np.testing.assert_allclose(bm[key].sum(1), 1.0, atol=1e-5, err_msg=key)
    assert (bm['joint_regressor'] >= 0).all()
    # Levels are nested, and up-sampling reproduces the finer template.
    template = bm['template']
    np.testing.assert_array_equal(template[bm['downsample_fine_to_intermediate_index']], bm['template_intermediate'])
    np.testing.assert_allclose(bm['downsample_fine_to_intermediate'] @ template, bm['template_intermediate'])
    np.testing.assert_allclose(bm['downsample_intermediate_to_coarse'] @ bm['template_intermediate'],
                               bm['template_coarse'])
    up = bm['upsample_intermediate_to_fine'] @ (bm['upsample_coarse_to_intermediate'] @ bm['template_coarse'])
    assert np.linalg.norm(up - template, axis=1).max() < 1e-3
    np.testing.assert_allclose(bm['joint_regressor'] @ template, bm['template_joints'], atol=1e-5)
    # Adjacency: symmetric, self-loops, 5-10 entries per row (Hulk's 431-vertex mask has about 7).
    adj = bm['adjacency_coarse']
    assert (adj == adj.T).all() and (np.diag(adj) == 1).all() and 5 <= adj.sum(1).min() <= adj.sum(1).max() <= 10
    # Faces: triangles of valid vertices, outward (positive volume per closed part), mirror symmetry.
    faces = bm['faces']
    assert faces.shape[1] == 3 and faces.min() == 0 and faces.max() == v - 1
    for p in range(len(PART_NAMES)):
        f = template.astype(np.float64)[faces[bm['vertex_part'][faces[:, 0]] == p]]
        assert np.einsum('ij,ij->i', f[:, 0], np.cross(f[:, 1], f[:, 2])).sum() > 0, PART_NAMES[p]
    flip = bm['flip_index']
    np.testing.assert_array_equal(flip[flip], np.arange(v))
    np.testing.assert_allclose(template[flip], template * [-1, 1, 1], atol=1e-6)


def test_regressor_reproduces_joints_of_random_bodies(body_mesh):
    for i in range(10):
        rng = np.random.default_rng(i)
        shape, pose, yaw, root = sample_shape(rng), sample_pose(rng), rng.uniform(-np.pi, np.pi), rng.normal(size=3)
        vertices = body_mesh.posed_vertices(shape, pose, root, yaw)
        joints = joints_from_points(forward_kinematics(shape, pose, root, yaw))
        assert np.abs(body_mesh.joint_regressor @ vertices - joints).max() < 0.01


def test_vertices_cover_the_rendered_silhouette(body_mesh):
    """Posed vertices of people big enough for a mesh crop project into their amodal silhouette."""
    fractions = []
    for i in range(8):
        scene = generate_scene(scene_rng(SEED, 'train', i))
        for person in scene.persons:
            if person.box_full[3] - person.box_full[1] < mesh_writer.MIN_HEIGHT:
                continue
            body, _ = person_primitives(person.points3d, person.shape, person.attributes, person.colors)
            layer = rasterise(body, scene.camera, np.array([0.0, 0.0, -1.0]))
            vertices = scene.camera.to_camera(body_mesh.posed_vertices(person.shape, person.pose, np.zeros(3),
                                                                       person.yaw))
            uv, _ = project(vertices + person.points3d[POINT_INDEX['pelvis']], scene.camera)
            mask = cv2.dilate(np.pad(layer.mask, 1).astype(np.uint8), np.ones((3, 3), np.uint8))
            x = np.round(uv[:, 0]).astype(int) - layer.x0 + 1
            y = np.round(uv[:, 1]).astype(int) - layer.y0 + 1
            ok = (x >= 0) & (x < mask.shape[1]) & (y >= 0) & (y < mask.shape[0])
            inside = np.zeros(len(uv), bool)
            inside[ok] = mask[y[ok], x[ok]] > 0
            fractions.append(inside.mean())
    assert len(fractions) >= 5 and min(fractions) > 0.95, fractions


def test_mesh_crops_and_cameras(synth, body_mesh):
    root, manifest = synth
    bm = _npz(root, 'mesh/body_model.npz')
    for split in ('train', 'val'):
        d = _npz(root, f'mesh/{split}.npz')
        n = len(d['imgname'])
        assert n > 0 and manifest['files']['mesh'][f'mesh/{split}.npz']['crops'] == n
        assert d['vertices'].shape == (n, len(bm['template']), 3) and d['joints3d'].shape == (n, 14, 3)
        size = int(d['crop_size'])
        f, cx, cy = (d['intrinsics'][:, i, None] for i in range(3))
        j3 = d['joints3d'].astype(np.float64)
        proj = np.stack([f * j3[..., 0] / j3[..., 2] + cx, f * j3[..., 1] / j3[..., 2] + cy], -1)
        assert np.abs(proj - d['joints2d']).max() < 0.5
        # Regressor on the stored vertices, root = mid-hip = pelvis translation.
        regressed = np.einsum('jv,nvc->njc', bm['joint_regressor'], d['vertices'])
        assert np.abs(regressed - j3).max() < 0.01
        root_joint = j3[:, [2, 3]].mean(1)
        np.testing.assert_allclose(root_joint, d['transl'], atol=1e-5)
        # Weak perspective = perspective with every depth set to the root's (close for a person far away).
        s, t = d['cam'][:, :1, None], d['cam'][:, None, 1:]
        weak = s * (j3[..., :2] - root_joint[:, None, :2] + t)
        normalised = 2 * d['joints2d'] / size - 1
        np.testing.assert_allclose(2 * d['intrinsics'][:, 0] / (size * root_joint[:, 2]), d['cam'][:, 0], rtol=1e-5)
        assert np.abs(weak - normalised).mean() < 0.05
        # The crop shows the scene: colours at visible joints match the source image.
        vis = d['joints2d_visibility']
        assert set(np.unique(vis)) <= {0, 1, 2} and (vis == 2).any()
        i = int(np.argmax((vis == 2).sum(1)))
        crop = cv2.imread(osp.join(root, 'mesh', str(d['imgname'][i])))
        assert crop.shape == (size, size, 3)
        scene = generate_scene(scene_rng(SEED, split, int(d['image_id'][i]) - 1))
        person = scene.persons[int(d['instance_id'][i]) - 1]
        src = np.round(person.points2d[[POINT_INDEX[j] for j in MESH_JOINTS]]).astype(int)
        dst = np.round(d['joints2d'][i]).astype(int)
        seen = vis[i] == 2
        diff = np.abs(crop[dst[seen, 1], dst[seen, 0], ::-1].astype(int)
                      - scene.image[src[seen, 1], src[seen, 0]].astype(int))
        assert diff.mean() < 25


def test_human_mesh_dataset(synth, tmp_path):
    root, _ = synth
    ds = DATASETS.build(dict(type='HumanMeshDataset', data_root=osp.join(root, 'mesh'), ann_file='train.npz'))
    d = _npz(root, 'mesh/train.npz')
    assert len(ds) == len(d['imgname']) and ds.metainfo['joint_names'] == MESH_JOINTS
    info = ds.get_data_info(0)
    assert osp.isfile(info['img_path']) and info['crop_size'] == 224
    np.testing.assert_array_equal(info['vertices'], d['vertices'][0])
    np.testing.assert_array_equal(info['cam'], d['cam'][0])
    # Absolute ann_file without data_root: images relative to the npz's folder.
    ds2 = DATASETS.build(dict(type='HumanMeshDataset', ann_file=osp.join(root, 'mesh', 'val.npz')))
    assert osp.isfile(ds2.get_data_info(0)['img_path'])
    bad = str(tmp_path / 'bad.npz')
    np.savez(bad, **{k: v for k, v in d.items() if k not in ('vertices', 'cam')})
    with pytest.raises(KeyError, match=r"bad\.npz.*vertices, cam"):
        DATASETS.build(dict(type='HumanMeshDataset', ann_file=bad))
    with pytest.raises(FileNotFoundError, match='nowhere.npz'):
        DATASETS.build(dict(type='HumanMeshDataset', ann_file=str(tmp_path / 'nowhere.npz')))


def test_mesh_metric(synth):
    root, _ = synth
    d = _npz(root, 'mesh/val.npz')
    joints, vertices = d['joints3d'].astype(np.float64), d['vertices'].astype(np.float64)

    def evaluate(pred_joints, pred_vertices, as_tensor=False):
        metric = METRICS.build(dict(type='MeshMetric', prefix='mesh.synthhuman'))
        wrap = torch.from_numpy if as_tensor else np.asarray
        metric.process(None, [dict(pred_joints3d=wrap(pj), gt_joints3d=wrap(gj), pred_vertices=wrap(pv),
                                   gt_vertices=wrap(gv))
                              for pj, gj, pv, gv in zip(pred_joints, joints, pred_vertices, vertices)])
        return {k.split('/')[1]: v for k, v in metric.evaluate(len(joints)).items()}

    perfect = evaluate(joints, vertices, as_tensor=True)
    assert set(perfect) == {'MPJPE', 'PA-MPJPE', 'MPVPE'}
    assert METRICS.build(dict(type='MeshMetric')).prefix == 'mesh'
    assert all(abs(v) < 1e-6 for v in perfect.values()), perfect
    # A rigid shift of everything vanishes with the root alignment.
    shifted = evaluate(joints + [0.1, -0.2, 0.3], vertices + [0.1, -0.2, 0.3])
    assert all(abs(v) < 1e-6 for v in shifted.values()), shifted
    # 50 mm in random directions on every joint but the hips (which keep the root): MPJPE = 50 * 12 / 14 mm.
    rng = np.random.default_rng(0)
    direction = rng.normal(size=joints.shape)
    offset = 0.05 * direction / np.linalg.norm(direction, axis=-1, keepdims=True)
    offset[:, [2, 3]] = 0
    v_dir = rng.normal(size=vertices.shape)
    v_offset = 0.02 * v_dir / np.linalg.norm(v_dir, axis=-1, keepdims=True)
    wrong = evaluate(joints + offset, vertices + v_offset)
    assert wrong['MPJPE'] == pytest.approx(50 * 12 / 14, abs=1e-6)
    assert wrong['MPVPE'] == pytest.approx(20.0, abs=1e-6)
    assert 0 < wrong['PA-MPJPE'] <= wrong['MPJPE']
    with pytest.raises(KeyError, match='gt_joints3d'):
        METRICS.build(dict(type='MeshMetric')).process(None, [dict(pred_joints3d=joints[0])])


def test_deterministic(synth, tmp_path):
    root, _ = synth
    again = str(tmp_path / 'again')
    generate(again, NUM_TRAIN, NUM_VAL, SEED, tasks=TASKS, workers=2, progress=False)
    for name in (ANN_FILE,) + MESH_FILES:
        assert _read(root, name) == _read(again, name), name
    crop = _npz(root, 'mesh/val.npz')['imgname'][0]
    assert _read(osp.join(root, 'mesh'), crop) == _read(osp.join(again, 'mesh'), crop)
