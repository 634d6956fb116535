"""2-D skeleton action clips in mmaction2's ``PoseDataset`` format (``skeleton_action/synthhuman_2d.pkl``).

One clip per scene index, drawn from its own generator ``rng([seed, split_id, image_id, SALT])`` (the rendered
scene is not used), so clips are deterministic and independent of workers and split sizes. A clip:

* camera: ``IMG_SHAPE`` = 1080 x 1920 (h, w), NTU RGB+D's video size and ``PreNormalize2D``'s default; focal
  length 0.6-1.0 image widths, 1.0-1.8 m high, pitched 0-15 degrees down;
* people: the actor (first) and, with probability ``SECOND_PERSON_P``, a bystander (second) doing the same
  action or idling; 3-7.5 m away, any heading; T = 48-100 frames (``FRAME_RANGE``);
* keypoints: COCO-17 projections plus Gaussian noise of 0.4-1.2 % of the person's image height (more for
  low-score joints); scores in (0, 1] per joint (a per-clip level with per-frame jitter); missing joints (random
  drops, short runs of a lost joint, and points outside the image) have score 0 and coordinates 0.

Labels are balanced: clip ``i`` (0-based) of a split takes class ``perm_b[i % C]`` where ``perm_b`` is a random
permutation of the C classes for block ``b = i // C``.

``synthhuman_2d.pkl`` = ``{'split': {'train': [frame_dir, ...], 'val': [...]}, 'annotations': [dict(frame_dir,
label, img_shape, original_shape, total_frames, keypoint float32 (M, T, 17, 2), keypoint_score float32
(M, T, 17))]}``; the class names (``ACTION_CLASSES``, label order) are in the manifest entry.
"""
import os.path as osp
import pickle

import numpy as np

from ..actions import ACTION_CLASSES, animate
from ..body import COCO_KEYPOINTS, Camera, project, sample_shape
from .base import SPLIT_IDS, TaskWriter

IMG_SHAPE = (1080, 1920)
FRAME_RANGE = (48, 100)
SECOND_PERSON_P = 0.4
SALT = 1005  # 5 = the task's index in generator.TASKS; the 1000 keeps it apart from other writers' salts
PICKLE_PROTOCOL = 4
ANN_FILE = 'skeleton_action/synthhuman_2d.pkl'


def clip_label(seed, split, index):
    """Balanced class of clip ``index`` (0-based) of ``split``."""
    num = len(ACTION_CLASSES)
    block, slot = divmod(index, num)
    return int(np.random.default_rng([seed, SPLIT_IDS[split], block, SALT]).permutation(num)[slot])


def _place(rng, camera, taken):
    """Ground position (x, z) in the level frame, inside the central part of the view, 1 m from ``taken``."""
    for _ in range(50):
        z = rng.uniform(3.0, 7.5)
        x = (rng.uniform(0.2, 0.8) * camera.width - camera.cx) * z / camera.f
        if all(np.hypot(x - x2, z - z2) >= 1.0 for x2, z2 in taken):
            break
    return x, z


def _observe(rng, points, camera):
    """Noisy 2-D keypoints of one person: points (T, 17, 3) camera frame -> keypoint (T, 17, 2), score (T, 17)."""
    uv, depth = project(points, camera)
    num_frames, num_joints = uv.shape[:2]
    height_px = camera.f * 1.7 / float(np.median(depth))
    score = np.clip(rng.uniform(0.55, 1.0, num_joints)[None] + 0.05 * rng.standard_normal(uv.shape[:2]), 0.05, 1.0)
    sigma = rng.uniform(0.004, 0.012) * height_px * (1.5 - score)
    uv = uv + sigma[..., None] * rng.standard_normal(uv.shape)
    missing = rng.random(uv.shape[:2]) < rng.uniform(0.0, 0.05)
    if rng.random() < 0.3:  # a joint lost for a short run of frames (a tracker drop-out)
        run = int(rng.integers(5, 21))
        start = int(rng.integers(0, max(num_frames - run, 1)))
        missing[start:start + run, rng.integers(num_joints)] = True
    missing |= ((uv[..., 0] < 0) | (uv[..., 0] > camera.width - 1) | (uv[..., 1] < 0)
                | (uv[..., 1] > camera.height - 1))
    uv[missing] = 0.0
    score[missing] = 0.0
    return uv.astype(np.float32), score.astype(np.float32)


def sample_clip(rng, label):
    """One clip of class ``label``: keypoint (M, T, 17, 2) float32 pixels, keypoint_score (M, T, 17) float32."""
    height, width = IMG_SHAPE
    camera = Camera(f=float(width * rng.uniform(0.6, 1.0)), cx=(width - 1) / 2, cy=(height - 1) / 2, width=width,
                    height=height, pitch=float(np.deg2rad(rng.uniform(0, 15))),
                    elevation=float(rng.uniform(1.0, 1.8)))
    num_frames = int(rng.integers(FRAME_RANGE[0], FRAME_RANGE[1] + 1))
    actions = [ACTION_CLASSES[label]]
    if rng.random() < SECOND_PERSON_P:
        actions.append(ACTION_CLASSES[label] if rng.random() < 0.5 else 'idle')
    keypoints, scores, taken = [], [], []
    for action in actions:
        spot = _place(rng, camera, taken)
        taken.append(spot)
        points = animate(rng, action, num_frames, sample_shape(rng), spot, float(rng.uniform(-np.pi, np.pi)))
        points = camera.to_camera(points[:, :len(COCO_KEYPOINTS)] + np.array([0.0, camera.elevation, 0.0]))
        kp, sc = _observe(rng, points, camera)
        keypoints.append(kp)
        scores.append(sc)
    return np.stack(keypoints), np.stack(scores)


class SkeletonActionWriter(TaskWriter):
    """``skeleton_action/synthhuman_2d.pkl``: one 2-D skeleton clip per scene index (module docstring)."""

    name = 'skeleton_action'

    def image_record(self, scene, split, image_id, jpeg):
        index = image_id - 1
        label = clip_label(self.seed, split, index)
        keypoint, score = sample_clip(np.random.default_rng([self.seed, SPLIT_IDS[split], image_id, SALT]), label)
        return dict(frame_dir=f'{split}_{image_id:06d}', label=label, img_shape=IMG_SHAPE,
                    original_shape=IMG_SHAPE, total_frames=int(keypoint.shape[1]), keypoint=keypoint,
                    keypoint_score=score)

    def finalize(self, records):
        # Records from worker processes arrive unpickled one by one, those made in this process share objects
        # (e.g. dict keys) across records; a per-record round trip gives both the same object identities, and
        # so the same pickle memo and byte-identical files.
        annotations = [pickle.loads(pickle.dumps(rec, protocol=PICKLE_PROTOCOL))
                       for split in records for rec in records[split]]
        data = dict(split={split: [rec['frame_dir'] for rec in recs] for split, recs in records.items()},
                    annotations=annotations)
        with open(osp.join(self.out_dir, ANN_FILE), 'wb') as f:
            pickle.dump(data, f, protocol=PICKLE_PROTOCOL)
        counts = {split: len(recs) for split, recs in records.items()}
        return {ANN_FILE: dict(clips=counts, classes=list(ACTION_CLASSES), img_shape=list(IMG_SHAPE),
                               labels={split: np.bincount([r['label'] for r in recs],
                                                          minlength=len(ACTION_CLASSES)).tolist()
                                       for split, recs in records.items()})}
