"""Articulated 3-D body model of SynthHuman: shape, pose, forward kinematics and the pinhole camera.

Frames (all right-handed, metres):

* body-local frame: ``x`` = the person's own left, ``y`` = up, ``z`` = the direction the person faces;
* level frame: ``X`` right, ``Y`` down, ``Z`` away from the camera, ``Y = 0`` at the camera's height. A person
  with ``yaw = 0`` faces the camera; positive yaw turns them towards their own left (counter-clockwise seen
  from above);
* camera frame: the level frame pitched down by the camera's pitch (``Camera.to_camera``); this is the frame of
  every 3-D joint a record stores, and the frame ``project`` expects.

A person is a shape (a dict of named lengths/radii, fixed per person) and a pose (a vector of ``len(POSE_NAMES)``
joint angles in radians, meant to be animated over time). ``forward_kinematics`` turns both into the named points
of ``POINT_NAMES``: the 17 COCO keypoints first (COCO order), then helper points.
"""
from dataclasses import dataclass

import numpy as np

COCO_KEYPOINTS = ('nose', 'left_eye', 'right_eye', 'left_ear', 'right_ear', 'left_shoulder', 'right_shoulder',
                  'left_elbow', 'right_elbow', 'left_wrist', 'right_wrist', 'left_hip', 'right_hip', 'left_knee',
                  'right_knee', 'left_ankle', 'right_ankle')
HELPER_POINTS = ('neck', 'pelvis', 'head_center', 'head_top', 'left_hand', 'right_hand', 'left_toe', 'right_toe')
POINT_NAMES = COCO_KEYPOINTS + HELPER_POINTS
POINT_INDEX = {name: i for i, name in enumerate(POINT_NAMES)}
# Rigid segments of the kinematic chain (``segment_frames``); hands move with the forearms, feet with the shanks.
SEGMENTS = ('pelvis', 'torso', 'head', 'left_upper_arm', 'left_forearm', 'right_upper_arm', 'right_forearm',
            'left_thigh', 'left_shank', 'right_thigh', 'right_shank')

# Pose vector layout (radians) and natural limits. Signs: positive lean/flexion moves the limb forward, positive
# abduction moves it away from the body, positive knee/elbow flexion bends the joint the natural way.
_POSE_LIMITS_DEG = (
    ('torso_lean', -10, 30), ('torso_side', -12, 12), ('torso_twist', -30, 30),
    ('head_yaw', -70, 70), ('head_pitch', -30, 40), ('head_roll', -20, 20),
    ('left_shoulder_flex', -50, 170), ('left_shoulder_abd', 0, 160), ('left_shoulder_twist', -60, 60),
    ('left_elbow', 0, 150),
    ('right_shoulder_flex', -50, 170), ('right_shoulder_abd', 0, 160), ('right_shoulder_twist', -60, 60),
    ('right_elbow', 0, 150),
    ('left_hip_flex', -30, 100), ('left_hip_abd', 0, 40), ('left_knee', 0, 140),
    ('right_hip_flex', -30, 100), ('right_hip_abd', 0, 40), ('right_knee', 0, 140),
)
POSE_NAMES = tuple(name for name, _, _ in _POSE_LIMITS_DEG)
POSE_INDEX = {name: i for i, name in enumerate(POSE_NAMES)}
POSE_LIMITS = np.deg2rad(np.array([(lo, hi) for _, lo, hi in _POSE_LIMITS_DEG], dtype=np.float64))  # (D, 2)

BUILDS = ('slim', 'average', 'heavy')
_BUILD_GIRTH = {'slim': 0.82, 'average': 1.0, 'heavy': 1.28}


@dataclass(frozen=True)
class Camera:
    """Pinhole camera: focal length ``f`` and principal point ``(cx, cy)`` in pixels, image size, and the pitch
    (radians, positive = looking down) and height (metres above the ground) it was placed with."""

    f: float
    cx: float
    cy: float
    width: int
    height: int
    pitch: float = 0.0
    elevation: float = 1.5

    @property
    def rotation(self):
        """(3, 3) rotation from the level frame into the camera frame."""
        c, s = np.cos(self.pitch), np.sin(self.pitch)
        return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])

    def to_camera(self, points):
        """Level-frame points (..., 3) -> camera-frame points (..., 3)."""
        return np.asarray(points) @ self.rotation.T


def project(points, camera):
    """Pinhole projection of camera-frame points (..., 3) -> (pixels (..., 2), depth (...)).

    Pixel centres are at integer coordinates (pixel ``(i, j)`` is ``x = j, y = i``)."""
    points = np.asarray(points, dtype=np.float64)
    z = points[..., 2]
    uv = camera.f * points[..., :2] / z[..., None] + np.array([camera.cx, camera.cy])
    return uv, z


def sample_shape(rng):
    """Per-person body shape: a dict of lengths and radii in metres, plus ``height`` and ``build``.

    Lengths are fractions of the standing height with a few percent of independent variation per segment, so
    proportions differ between people; ``build`` scales the limb and torso radii (girth), not the lengths."""
    height = rng.uniform(1.50, 1.95)
    build = BUILDS[rng.choice(3, p=(0.3, 0.45, 0.25))]
    girth = _BUILD_GIRTH[build] * rng.uniform(0.93, 1.07)
    return _shape(height, build, girth, rng.uniform)


def mean_shape(height=1.72):
    """The body shape of ``sample_shape`` with every per-segment variation at its centre: ``average`` build,
    the given standing height (metres), left and right sides equal. Deterministic (no random draws); it is the
    canonical shape of the body mesh template (``mesh_model``)."""
    return _shape(height, 'average', _BUILD_GIRTH['average'], lambda lo, hi: 0.5 * (lo + hi))


def _shape(height, build, girth, uniform):
    """Shape dict of ``sample_shape`` from its height, build and girth; ``uniform(lo, hi)`` draws each segment's
    variation factor (called in a fixed order, so a generator's stream is consumed exactly as before)."""

    def length(fraction, spread=0.05):
        return float(fraction * height * uniform(1 - spread, 1 + spread))

    def radius(fraction):
        return float(fraction * height * girth)

    return dict(
        height=float(height), build=build, girth=float(girth),
        torso=length(0.29), neck=length(0.045, 0.15), head_radius=length(0.062, 0.06),
        shoulder_half_width=float(0.112 * height * uniform(0.92, 1.08) * (0.85 + 0.15 * girth)),
        shoulder_drop=length(0.02, 0.3),
        hip_half_width=float(0.056 * height * uniform(0.9, 1.1) * (0.8 + 0.2 * girth)),
        upper_arm=length(0.172), forearm=length(0.146), hand=length(0.058, 0.1),
        thigh=length(0.245), shank=length(0.246), foot=length(0.13, 0.08),
        torso_radius=radius(0.058), chest_radius=radius(0.048), pelvis_radius=radius(0.052),
        upper_arm_radius=radius(0.026), forearm_radius=radius(0.021), hand_radius=radius(0.017),
        thigh_radius=radius(0.040), knee_radius=radius(0.030), ankle_radius=radius(0.021),
        foot_radius=radius(0.022),
    )


def sample_pose(rng):
    """A natural pose vector (len(POSE_NAMES),) in radians, inside ``POSE_LIMITS``.

    Most people stand, walk or gesture: angles are drawn near a relaxed rest pose and occasionally (per limb)
    anywhere in the limit range, so raised arms, big steps and crouches appear but stay rare."""
    lo, hi = POSE_LIMITS[:, 0], POSE_LIMITS[:, 1]
    rest = np.deg2rad(np.array([5, 0, 0, 0, 5, 0,
                                5, 12, 0, 25, 5, 12, 0, 25,
                                5, 5, 10, 5, 5, 10], dtype=np.float64))
    spread = np.deg2rad(np.array([6, 4, 10, 35, 12, 6,
                                  25, 10, 25, 30, 25, 10, 25, 30,
                                  18, 5, 15, 18, 5, 15], dtype=np.float64))
    pose = rest + spread * rng.standard_normal(len(POSE_NAMES))
    # Walking: swing the legs in opposite directions and the arms against them.
    stride = rng.uniform(-0.45, 0.45) if rng.random() < 0.5 else 0.0
    pose[[POSE_INDEX['left_hip_flex'], POSE_INDEX['right_hip_flex']]] += (stride, -stride)
    pose[[POSE_INDEX['left_shoulder_flex'], POSE_INDEX['right_shoulder_flex']]] += (-0.6 * stride, 0.6 * stride)
    pose[[POSE_INDEX['left_knee'], POSE_INDEX['right_knee']]] += 0.5 * abs(stride)
    # Free limbs: anywhere in their range (arms: gestures, raised hands; legs: steps, crouches).
    for side in ('left', 'right'):
        if rng.random() < 0.25:
            idx = [POSE_INDEX[f'{side}_shoulder_{k}'] for k in ('flex', 'abd', 'twist')] + [POSE_INDEX[f'{side}_elbow']]
            pose[idx] = rng.uniform(lo[idx], hi[idx])
        if rng.random() < 0.08:
            idx = [POSE_INDEX[f'{side}_hip_flex'], POSE_INDEX[f'{side}_knee']]
            pose[idx] = rng.uniform(lo[idx], hi[idx]) * (0.7, 1.0)
    return np.clip(pose, lo, hi)


def _vector(entries, batched):
    """(..., n) from n scalars, or from scalars and arrays of one batch shape when ``batched``."""
    return np.stack(np.broadcast_arrays(*entries), axis=-1) if batched else np.array(entries, dtype=np.float64)


def _matrix(rows, batched):
    """(..., 3, 3) from 3 rows of 3 entries (scalars, or arrays of one batch shape when ``batched``). The plain
    construction for a single pose is the fast path (kinematics are called per person and per frame)."""
    if not batched:
        return np.array(rows, dtype=np.float64)
    return np.stack(np.broadcast_arrays(*[_vector(row, True) for row in rows]), axis=-2)


def _rot_x(a):
    c, s = np.cos(a), np.sin(a)
    return _matrix([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]], np.ndim(a) > 0)


def _rot_y(a):
    c, s = np.cos(a), np.sin(a)
    return _matrix([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]], np.ndim(a) > 0)


def _rot_z(a):
    c, s = np.cos(a), np.sin(a)
    return _matrix([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], np.ndim(a) > 0)


def _local_to_level(yaw):
    """(..., 3, 3) matrix whose columns are the body's left, up and forward axes in the level frame."""
    up = np.array([0.0, -1.0, 0.0])
    forward = _vector([np.sin(yaw), 0.0, -np.cos(yaw)], np.ndim(yaw) > 0)
    left = np.cross(up, forward)
    return np.stack(np.broadcast_arrays(left, up, forward), axis=-1)


def forward_kinematics(shape, pose, root_xyz, yaw):
    """3-D points of one person: (len(POINT_NAMES), 3) in the frame of ``root_xyz`` (metres).

    Args:
        shape: dict from ``sample_shape``.
        pose: (len(POSE_NAMES),) joint angles in radians (``sample_pose``).
        root_xyz: (3,) pelvis position in the level frame.
        yaw: global heading in radians (any angle; 0 = facing the camera).

    Batched: ``pose`` (..., D) with ``yaw`` (...) or scalar and ``root_xyz`` (..., 3) or (3,) give
    (..., len(POINT_NAMES), 3), e.g. all frames of an animation at once.
    """
    pts, _ = _kinematics(shape, pose, yaw)
    return np.stack([pts[name] for name in POINT_NAMES], axis=-2) + np.asarray(root_xyz, dtype=np.float64)[..., None, :]


def segment_frames(shape, pose, root_xyz, yaw):
    """Rigid frames of the body segments (``SEGMENTS``), the same kinematic chain as ``forward_kinematics``.

    Every point of ``POINT_NAMES`` is fixed in one segment's frame (e.g. the toe in the shank's, the hip in the
    pelvis's), so a surface attached to a segment follows the points exactly.

    Returns (batched like ``forward_kinematics``: leading dimensions of ``pose`` first):
        origins: (len(SEGMENTS), 3) segment origins in the frame of ``root_xyz`` (metres): the pelvis for
            ``pelvis`` and ``torso``, the neck for ``head``, the shoulder, elbow, hip or knee for the limbs.
        rotations: (len(SEGMENTS), 3, 3) columns = the segment's left, up and forward axes (body-local ``x``,
            ``y``, ``z`` carried along the chain) in the level frame.
    """
    _, frames = _kinematics(shape, pose, yaw)
    origins = np.stack([frames[name][0] for name in SEGMENTS], axis=-2)
    return origins + np.asarray(root_xyz, dtype=np.float64)[..., None, :], np.stack(
        [frames[name][1] for name in SEGMENTS], axis=-3)


def _kinematics(shape, pose, yaw):
    """Named points (dict of (..., 3), pelvis at the origin) and segment frames (dict name -> (origin,
    rotation)) of a pose (..., D). Every operation broadcasts over the leading (batch) dimensions."""
    pose = np.asarray(pose, dtype=np.float64)
    yaw = np.broadcast_to(np.asarray(yaw, dtype=np.float64), pose.shape[:-1])
    p = dict(zip(POSE_NAMES, np.moveaxis(pose, -1, 0)))
    s = shape
    down = np.array([0.0, -1.0, 0.0])
    pts = {}

    pelvis_rot = _local_to_level(yaw)
    torso_rot = pelvis_rot @ _rot_y(p['torso_twist']) @ _rot_x(p['torso_lean']) @ _rot_z(p['torso_side'])
    head_rot = torso_rot @ _rot_y(p['head_yaw']) @ _rot_x(p['head_pitch']) @ _rot_z(p['head_roll'])

    pts['pelvis'] = np.zeros(yaw.shape + (3,))
    pts['neck'] = torso_rot @ np.array([0.0, s['torso'], 0.0])
    frames = dict(pelvis=(pts['pelvis'], pelvis_rot), torso=(pts['pelvis'], torso_rot), head=(pts['neck'], head_rot))
    r = s['head_radius']
    head_center = pts['neck'] + head_rot @ np.array([0.0, s['neck'] + 0.8 * r, 0.1 * r])
    pts['head_center'] = head_center
    pts['head_top'] = head_center + head_rot @ np.array([0.0, r, 0.0])
    # Face points sit on the head sphere; their back-facing halves are hidden by the sphere itself.
    face = dict(nose=(0.0, -0.15, 1.0), left_eye=(0.33, 0.22, 0.92), right_eye=(-0.33, 0.22, 0.92),
                left_ear=(0.97, 0.05, -0.05), right_ear=(-0.97, 0.05, -0.05))
    for name, direction in face.items():
        d = np.array(direction)
        pts[name] = head_center + head_rot @ (r * d / np.linalg.norm(d))

    for side, sign in (('left', 1.0), ('right', -1.0)):
        shoulder = pts['neck'] + torso_rot @ np.array([sign * s['shoulder_half_width'], -s['shoulder_drop'], 0.0])
        upper_rot = (torso_rot @ _rot_x(-p[f'{side}_shoulder_flex']) @ _rot_z(sign * p[f'{side}_shoulder_abd'])
                     @ _rot_y(sign * p[f'{side}_shoulder_twist']))
        elbow = shoulder + s['upper_arm'] * (upper_rot @ down)
        fore_rot = upper_rot @ _rot_x(-p[f'{side}_elbow'])
        wrist = elbow + s['forearm'] * (fore_rot @ down)
        pts[f'{side}_shoulder'], pts[f'{side}_elbow'], pts[f'{side}_wrist'] = shoulder, elbow, wrist
        pts[f'{side}_hand'] = wrist + s['hand'] * (fore_rot @ down)

        hip = pelvis_rot @ np.array([sign * s['hip_half_width'], 0.0, 0.0])
        thigh_rot = pelvis_rot @ _rot_x(-p[f'{side}_hip_flex']) @ _rot_z(sign * p[f'{side}_hip_abd'])
        knee = hip + s['thigh'] * (thigh_rot @ down)
        shank_rot = thigh_rot @ _rot_x(p[f'{side}_knee'])
        ankle = knee + s['shank'] * (shank_rot @ down)
        # The foot stays roughly perpendicular to the shank, pointing forward and a little down.
        foot_dir = shank_rot @ np.array([0.0, -0.3, 1.0])
        pts[f'{side}_hip'], pts[f'{side}_knee'], pts[f'{side}_ankle'] = hip, knee, ankle
        # (A single pose keeps np.linalg.norm's 1-D summation, so its points stay bit-identical.)
        norm = np.linalg.norm(foot_dir) if foot_dir.ndim == 1 else np.linalg.norm(foot_dir, axis=-1, keepdims=True)
        pts[f'{side}_toe'] = ankle + s['foot'] * foot_dir / norm
        frames.update({f'{side}_upper_arm': (shoulder, upper_rot), f'{side}_forearm': (elbow, fore_rot),
                       f'{side}_thigh': (hip, thigh_rot), f'{side}_shank': (knee, shank_rot)})

    return pts, frames


def ground_clearance(shape, points):
    """Distance (metres, along level ``+Y`` = down) from the lowest foot surface of ``points`` (level frame) to
    the pelvis; placing the pelvis at ``ground_y - ground_clearance`` stands the person on the ground.
    Batched ``points`` (..., P, 3) give an array (...) instead of a float."""
    feet = points[..., [POINT_INDEX['left_ankle'], POINT_INDEX['right_ankle'],
                        POINT_INDEX['left_toe'], POINT_INDEX['right_toe']], 1]
    radii = np.array([shape['ankle_radius'], shape['ankle_radius'], shape['foot_radius'], shape['foot_radius']])
    clearance = np.max(feet + radii, axis=-1) - points[..., POINT_INDEX['pelvis'], 1]
    return float(clearance) if clearance.ndim == 0 else clearance
