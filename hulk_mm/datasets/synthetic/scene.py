"""One SynthHuman scene: camera, people, rendered maps and a per-person record every task writer reads.

The record (``Person``) holds geometry (shape, pose, 3-D and 2-D points, visibility, boxes, areas) and appearance
attributes. Task writers only read records and maps, so new outputs (attributes, captions, skeleton sequences,
meshes) are added as writers without touching the renderer.
"""
from dataclasses import dataclass, field

import numpy as np

from .appearance import sample_appearance
from .body import (COCO_KEYPOINTS, POINT_INDEX, Camera, forward_kinematics, ground_clearance, project,
                   sample_pose, sample_shape)
from .render import HEAD_LABELS, composite, person_primitives, rasterise, render_background, visibility_tolerance


MIN_MAIN_VISIBLE_FRACTION = 0.3
MIN_MAIN_AREA = 100
MAX_ATTEMPTS = 100


@dataclass(frozen=True)
class SceneConfig:
    """Scene sampling parameters. Sizes in pixels, distances in metres, angles in degrees.

    The default 320x256 canvas keeps generation at a few milliseconds per scene while people still span
    ~30-250 px in height (depth range x focal range)."""

    width: int = 320
    height: int = 256
    min_persons: int = 1
    max_persons: int = 5
    depth_range: tuple = (2.5, 12.0)
    focal_range: tuple = (0.9, 1.3)           # focal length as a multiple of the image width
    camera_height_range: tuple = (1.0, 1.9)
    camera_pitch_range: tuple = (-3.0, 12.0)  # positive = looking down
    border_margin: float = 0.12               # people's centres may lie this fraction of the width outside
    min_separation: float = 0.6               # minimum ground distance between two people
    noise_sigma: float = 3.0                  # sensor noise (grey levels)


@dataclass
class Person:
    """Everything known about one person of a scene. Boxes are ``(x1, y1, x2, y2)`` pixels (float), areas in
    pixels, 3-D points in metres in the camera frame, all point arrays in ``POINT_NAMES`` order.

    Attributes:
        instance_id: value of this person in the scene's instance map (index + 1).
        shape, pose, yaw: body parameters (``body.sample_shape``, ``body.sample_pose``; yaw in radians).
        points3d: (P, 3) camera frame. points2d: (P, 2) pixels. point_depth: (P,) metres.
        visibility: (P,) COCO convention: 2 visible, 1 inside the image but hidden (by another person, an
            object, another part of the same body, or the far side of the head), 0 outside the image.
        box_full: amodal box of the whole rendered body, may extend beyond the image; box_full_clipped: the same
            clipped to the image (None when outside); box_visible: box of the visible pixels (None when none);
            box_head: head box from the head sphere, hair and hat (unclipped).
        area_amodal: pixels of the whole silhouette (also outside the image); area_in_image: of those, pixels
            inside the image; area_visible: pixels of the instance map.
        head_visible_fraction: visible / amodal pixels with a head label (hat, hair, sunglasses, face).
        attributes: appearance attributes (``appearance.sample_appearance``); colors: the RGB used.
    """

    instance_id: int
    shape: dict
    pose: np.ndarray
    yaw: float
    points3d: np.ndarray
    points2d: np.ndarray
    point_depth: np.ndarray
    visibility: np.ndarray
    box_full: np.ndarray
    box_full_clipped: np.ndarray
    box_visible: np.ndarray
    box_head: np.ndarray
    area_amodal: int
    area_in_image: int
    area_visible: int
    head_visible_fraction: float
    attributes: dict
    colors: dict = field(repr=False)

    @property
    def keypoints(self):
        """(17, 2) COCO keypoints in pixels."""
        return self.points2d[:len(COCO_KEYPOINTS)]

    @property
    def keypoints_visible(self):
        """(17,) COCO visibility flags."""
        return self.visibility[:len(COCO_KEYPOINTS)]

    @property
    def joints3d(self):
        """(17, 3) COCO joints in metres, camera frame."""
        return self.points3d[:len(COCO_KEYPOINTS)]

    @property
    def visible_fraction(self):
        return self.area_visible / max(self.area_amodal, 1)

    @property
    def truncation(self):
        """Fraction of the silhouette outside the image."""
        return 1.0 - self.area_in_image / max(self.area_amodal, 1)

    @property
    def occlusion(self):
        """Fraction of the in-image silhouette hidden by other people or objects."""
        return 1.0 - self.area_visible / max(self.area_in_image, 1)


@dataclass
class Scene:
    """A rendered scene. image: (H, W, 3) uint8 RGB; labels: (H, W) uint8 LIP classes; instances: (H, W) uint8
    (0 = no person, i + 1 = ``persons[i]``); depth: (H, W) float32 metres (inf = background)."""

    image: np.ndarray
    labels: np.ndarray
    instances: np.ndarray
    depth: np.ndarray
    camera: Camera
    persons: list


def _sample_camera(rng, cfg):
    f = cfg.width * rng.uniform(*cfg.focal_range)
    return Camera(f=float(f), cx=(cfg.width - 1) / 2, cy=(cfg.height - 1) / 2, width=cfg.width, height=cfg.height,
                  pitch=float(np.deg2rad(rng.uniform(*cfg.camera_pitch_range))),
                  elevation=float(rng.uniform(*cfg.camera_height_range)))


def _place_people(rng, cfg, camera, count):
    """Ground positions (x, z) in the level frame: log-uniform depth, image-uniform horizontal position."""
    lo, hi = np.log(cfg.depth_range[0]), np.log(cfg.depth_range[1])
    spots = []
    for _ in range(20 * count):
        if len(spots) == count:
            break
        z = float(np.exp(rng.uniform(lo, hi)))
        u = rng.uniform(-cfg.border_margin, 1 + cfg.border_margin) * cfg.width
        x = float((u - camera.cx) * z / camera.f)
        if all(np.hypot(x - x2, z - z2) >= cfg.min_separation for x2, z2 in spots):
            spots.append((x, z))
    return spots


def _box(xs, ys):
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float64)


def _clip_box(box, width, height):
    x1, y1 = max(box[0], 0.0), max(box[1], 0.0)
    x2, y2 = min(box[2], float(width)), min(box[3], float(height))
    return np.array([x1, y1, x2, y2]) if x2 > x1 and y2 > y1 else None


def generate_scene(rng, cfg=SceneConfig()):
    """Sample and render one scene with ``cfg.min_persons..cfg.max_persons`` people. Deterministic in ``rng``.

    A scene in which nobody is clearly visible (at least ``MIN_MAIN_VISIBLE_FRACTION`` of a silhouette and
    ``MIN_MAIN_AREA`` pixels) is redrawn from the same generator: every image then has a target, which the
    benchmark formats assume (e.g. mmdet's CrowdHuman evaluation fails on an image without boxes)."""
    for _ in range(MAX_ATTEMPTS):
        scene = _sample_scene(rng, cfg)
        if any(p.visible_fraction >= MIN_MAIN_VISIBLE_FRACTION and p.area_visible >= MIN_MAIN_AREA
               for p in scene.persons):
            return scene
    raise RuntimeError(f'no scene with a visible person in {MAX_ATTEMPTS} attempts; check SceneConfig {cfg}')


def _sample_scene(rng, cfg):
    camera = _sample_camera(rng, cfg)
    count = int(rng.integers(cfg.min_persons, cfg.max_persons + 1))
    light = np.array([rng.uniform(-0.6, 0.6), rng.uniform(-0.9, -0.3), -1.0])
    light /= np.linalg.norm(light)

    people, layers = [], []
    for x, z in _place_people(rng, cfg, camera, count):
        shape, pose, yaw = sample_shape(rng), sample_pose(rng), float(rng.uniform(-np.pi, np.pi))
        attributes, colors = sample_appearance(rng, shape)
        local = forward_kinematics(shape, pose, np.zeros(3), yaw)
        # Stand on the ground: the level frame has Y down and the ground at the camera's elevation.
        root = np.array([x, camera.elevation - ground_clearance(shape, local), z])
        points3d = camera.to_camera(local + root)
        body, accessories = person_primitives(points3d, shape, attributes, colors)
        instance_id = len(people) + 1
        layer = rasterise(body, camera, light)
        layers.append((layer, instance_id))
        if accessories:
            layers.append((rasterise(accessories, camera, light), 0))
        people.append((instance_id, shape, pose, yaw, points3d, attributes, colors, layer,
                       visibility_tolerance(body, shape)))

    background = render_background(rng, cfg.height, cfg.width)
    rgb, labels, instances, depth = composite(background, layers)
    noise = rng.standard_normal((cfg.height, cfg.width), dtype=np.float32) * np.float32(cfg.noise_sigma)
    image = np.clip(rgb + noise[..., None], 0, 255).astype(np.uint8)

    persons = [_person_record(camera, labels, instances, depth, *p) for p in people]
    return Scene(image=image, labels=labels, instances=instances, depth=depth, camera=camera, persons=persons)


def _person_record(camera, labels, instances, depth, instance_id, shape, pose, yaw, points3d, attributes, colors,
                   layer, tolerance):
    width, height = camera.width, camera.height
    points2d, point_depth = project(points3d, camera)

    # Visibility: outside the image -> 0; else 2 when the front-most surface at the point's pixel is this person
    # and no nearer than the point's tolerance, 1 otherwise.
    px, py = np.round(points2d[:, 0]).astype(int), np.round(points2d[:, 1]).astype(int)
    inside = (px >= 0) & (px < width) & (py >= 0) & (py < height)
    visibility = np.where(inside, 1, 0).astype(np.int8)
    ix, iy = px[inside], py[inside]
    seen = (instances[iy, ix] == instance_id) & (depth[iy, ix] >= point_depth[inside] - tolerance[inside])
    visibility[np.flatnonzero(inside)[seen]] = 2

    amodal = layer.mask
    ys, xs = np.nonzero(amodal)
    box_full = _box(xs + layer.x0, ys + layer.y0)
    gx, gy = xs + layer.x0, ys + layer.y0
    area_in_image = int(np.count_nonzero((gx >= 0) & (gx < width) & (gy >= 0) & (gy < height)))
    vis_y, vis_x = np.nonzero(instances == instance_id)
    box_visible = _box(vis_x, vis_y) if len(vis_x) else None

    head_amodal = np.count_nonzero(np.isin(layer.label[amodal], HEAD_LABELS))
    head_visible = np.count_nonzero(np.isin(labels[vis_y, vis_x], HEAD_LABELS))
    r = shape['head_radius']
    hc = points3d[POINT_INDEX['head_center']]
    (center,), (zc,) = project(hc[None], camera)
    extent = camera.f * 1.15 * r / zc  # hair reaches ~1.15 head radii from the centre
    top = camera.f * (1.45 if attributes['hat'] else 1.15) * r / zc
    box_head = np.array([center[0] - extent, center[1] - top, center[0] + extent, center[1] + extent])

    return Person(instance_id=instance_id, shape=shape, pose=pose, yaw=yaw, points3d=points3d, points2d=points2d,
                  point_depth=point_depth, visibility=visibility, box_full=box_full,
                  box_full_clipped=_clip_box(box_full, width, height), box_visible=box_visible, box_head=box_head,
                  area_amodal=len(xs), area_in_image=area_in_image, area_visible=len(vis_x),
                  head_visible_fraction=head_visible / max(head_amodal, 1), attributes=attributes, colors=colors)
