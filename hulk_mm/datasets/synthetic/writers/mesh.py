"""3-D pose and mesh crops (``mesh/``): the SynthHuman stand-in for 3DPW / H3.6M with SMPL meshes.

Who gets a crop: people with at most ``MAX_TRUNCATION`` of their silhouette outside the image, at most
``MAX_OCCLUSION`` of the in-image silhouette hidden, and an amodal box at least ``MIN_HEIGHT`` px tall (of the
default 320x256 scene). The crop is the square of side ``CROP_PAD`` x the longer side of the amodal box
(``Person.box_full``), centred on it, resized to ``CROP_SIZE`` x ``CROP_SIZE`` (bilinear; black outside the
scene) and written to ``mesh/images/{split}/<image stem>_<instance id:02d>.jpg``.

``mesh/{split}.npz`` (N crops; the contract that the 3DPW / H3.6M converters write too; metres, camera frame
= x right, y down, z forward, unless stated):

==========================  ==============  ==========================================================
key                         shape, dtype    meaning
==========================  ==============  ==========================================================
imgname                     (N,) str        crop path relative to the folder of the npz
image_id, instance_id       (N,) int64      source scene image id and its person (``Person.instance_id``)
bbox                        (N, 4) float32  person box x1, y1, x2, y2 in source-image pixels
center                      (N, 2) float32  crop centre in source-image pixels
scale                       (N,) float32    crop side / 200 px in source-image pixels (SPIN's convention)
crop_size                   () int64        side of the stored crops in pixels (224)
joints3d                    (N, 14, 3) f32  the 14 joints (``joint_names``, LSP / Hulk order), absolute
joints2d                    (N, 14, 2) f32  their projections in crop pixels (pixel centres at integers)
joints2d_visibility         (N, 14) uint8   2 visible, 1 in the crop but hidden, 0 outside the crop
vertices                    (N, V, 3) f32   fine mesh vertices (V = 2556 here, 6890 with SMPL), absolute
intrinsics                  (N, 3) float32  f, cx, cy of the crop camera in crop pixels (square pixels)
cam                         (N, 3) float32  weak-perspective s, tx, ty (below)
pose                        (N, D) float32  body pose parameters (here joint angles in radians, ``pose_names``)
shape                       (N, K) float32  body shape parameters (here lengths/radii in metres, ``shape_names``)
global_orient               (N, 3, 3) f32   rotation from the body frame (x left, y up, z forward) to the camera
transl                      (N, 3) float32  pelvis (= mid-hip) position
has_joints3d, has_vertices  (N,) uint8      1 where ``joints3d`` / ``vertices`` are valid
joint_names                 (14,) str       ``MESH_JOINTS``
pose_names, shape_names     (D,), (K,) str  names of the parameter columns
==========================  ==============  ==========================================================

Weak-perspective camera (METRO/FastMETRO's, which Hulk predicts as its camera token): with the root
``r = (joints3d[2] + joints3d[3]) / 2`` (mid-hip) and normalised crop coordinates ``x_n = 2 x_px / crop_size - 1``,
``x_n ~= s * (X - r + t)`` for any point X, with ``s = 2 f / (crop_size * Z_r)`` and
``t = (r_x + (2 cx / crop_size - 1) / s, r_y + (2 cy / crop_size - 1) / s)``: the perspective projection with every
depth replaced by the root's. ``body_model.npz`` (written once) holds the mesh assets (``mesh_model``).
"""
import os
import os.path as osp

import cv2
import numpy as np

from ..body import POINT_INDEX, POSE_NAMES, segment_frames
from ..mesh_model import MESH_JOINTS, PELVIS_JOINTS, BodyMesh
from .base import TaskWriter, _write_bytes, encode_jpeg, image_name

MAX_TRUNCATION = 0.05  # fraction of the silhouette outside the image
MAX_OCCLUSION = 0.3    # fraction of the in-image silhouette hidden by other people or objects
MIN_HEIGHT = 64        # px, amodal box height in the scene
CROP_PAD = 1.2         # crop side = this x the longer side of the amodal box
CROP_SIZE = 224
SHAPE_NAMES = ('height', 'girth', 'torso', 'neck', 'head_radius', 'shoulder_half_width', 'shoulder_drop',
               'hip_half_width', 'upper_arm', 'forearm', 'hand', 'thigh', 'shank', 'foot', 'torso_radius',
               'chest_radius', 'pelvis_radius', 'upper_arm_radius', 'forearm_radius', 'hand_radius', 'thigh_radius',
               'knee_radius', 'ankle_radius', 'foot_radius')
_JOINT_INDEX = [POINT_INDEX[name] for name in MESH_JOINTS]


def weak_perspective(root, focal, cx, cy, crop_size):
    """(s, tx, ty) of the module docstring from the root (3,) and the crop intrinsics."""
    s = 2 * focal / (crop_size * root[2])
    return np.array([s, root[0] + (2 * cx / crop_size - 1) / s, root[1] + (2 * cy / crop_size - 1) / s])


def _fields(num_vertices):
    """Per-crop fields: name -> (shape, dtype); ``finalize`` stacks them."""
    return dict(
        imgname=((), str), image_id=((), np.int64), instance_id=((), np.int64), bbox=((4,), np.float32),
        center=((2,), np.float32), scale=((), np.float32), joints3d=((len(MESH_JOINTS), 3), np.float32),
        joints2d=((len(MESH_JOINTS), 2), np.float32), joints2d_visibility=((len(MESH_JOINTS),), np.uint8),
        vertices=((num_vertices, 3), np.float32), intrinsics=((3,), np.float32), cam=((3,), np.float32),
        pose=((len(POSE_NAMES),), np.float32), shape=((len(SHAPE_NAMES),), np.float32),
        global_orient=((3, 3), np.float32), transl=((3,), np.float32), has_joints3d=((), np.uint8),
        has_vertices=((), np.uint8))


class MeshWriter(TaskWriter):
    """``mesh/{split}.npz`` + crops under ``mesh/images/{split}/`` + ``mesh/body_model.npz``."""

    name = 'mesh'

    def __init__(self, out_dir, seed):
        super().__init__(out_dir, seed)
        self.body_mesh = BodyMesh()

    def prepare(self, splits):
        for split in splits:
            os.makedirs(osp.join(self.out_dir, 'mesh', 'images', split), exist_ok=True)

    def image_record(self, scene, split, image_id, jpeg):
        stem = image_name(image_id)[:-4]
        camera = scene.camera
        crops = []
        for person in scene.persons:
            box = person.box_full
            if (person.truncation > MAX_TRUNCATION or person.occlusion > MAX_OCCLUSION
                    or box[3] - box[1] < MIN_HEIGHT):
                continue
            center = 0.5 * (box[:2] + box[2:])
            side = CROP_PAD * max(box[2] - box[0], box[3] - box[1])
            zoom = CROP_SIZE / side
            # Source pixel p -> crop pixel zoom * (p - corner); pixel centres stay at integer coordinates.
            corner = center - 0.5 * side + 0.5 / zoom - 0.5
            affine = np.array([[zoom, 0.0, -zoom * corner[0]], [0.0, zoom, -zoom * corner[1]]])
            crop = cv2.warpAffine(scene.image, affine, (CROP_SIZE, CROP_SIZE), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            name = f'{stem}_{person.instance_id:02d}.jpg'
            _write_bytes(osp.join(self.out_dir, 'mesh', 'images', split, name), encode_jpeg(crop))

            intrinsics = np.array([zoom * camera.f, zoom * (camera.cx - corner[0]), zoom * (camera.cy - corner[1])])
            joints3d = person.points3d[_JOINT_INDEX]
            joints2d = person.points2d[_JOINT_INDEX] @ affine[:, :2].T + affine[:, 2]
            inside = ((joints2d >= -0.5) & (joints2d < CROP_SIZE - 0.5)).all(axis=1)
            visibility = np.where(inside, np.where(person.visibility[_JOINT_INDEX] == 2, 2, 1), 0)
            pelvis = person.points3d[POINT_INDEX['pelvis']]
            local = self.body_mesh.posed_vertices(person.shape, person.pose, np.zeros(3), person.yaw)
            pelvis_rot = segment_frames(person.shape, person.pose, np.zeros(3), person.yaw)[1][0]
            root = joints3d[list(PELVIS_JOINTS)].mean(axis=0)
            crops.append(dict(
                imgname=f'images/{split}/{name}', image_id=image_id, instance_id=person.instance_id, bbox=box,
                center=center, scale=side / 200.0, joints3d=joints3d, joints2d=joints2d,
                joints2d_visibility=visibility, vertices=camera.to_camera(local) + pelvis,
                intrinsics=intrinsics, cam=weak_perspective(root, *intrinsics, CROP_SIZE), pose=person.pose,
                shape=np.array([person.shape[k] for k in SHAPE_NAMES]), global_orient=camera.rotation @ pelvis_rot,
                transl=pelvis, has_joints3d=1, has_vertices=1))
        return crops

    def finalize(self, records):
        mesh_dir = osp.join(self.out_dir, 'mesh')
        np.savez_compressed(osp.join(mesh_dir, 'body_model.npz'), **self.body_mesh.assets())
        fields = _fields(self.body_mesh.num_vertices['fine'])
        files = {'mesh/body_model.npz': dict(vertices={k: int(v) for k, v in self.body_mesh.num_vertices.items()},
                                             joints=len(MESH_JOINTS))}
        for split, recs in records.items():
            crops = [crop for rec in recs for crop in rec]
            arrays = {key: (np.array([c[key] for c in crops], dtype=dtype) if crops
                            else np.zeros((0,) + shape, dtype=dtype if dtype is not str else '<U1'))
                      for key, (shape, dtype) in fields.items()}
            np.savez_compressed(osp.join(mesh_dir, f'{split}.npz'), **arrays, crop_size=np.int64(CROP_SIZE),
                                joint_names=np.array(MESH_JOINTS), pose_names=np.array(POSE_NAMES),
                                shape_names=np.array(SHAPE_NAMES))
            files[f'mesh/{split}.npz'] = dict(crops=len(crops))
        return files
