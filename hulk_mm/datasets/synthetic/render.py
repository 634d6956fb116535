"""Z-buffered rasteriser of SynthHuman: shaded tapered capsules, LIP part labels, instance ids and depth.

A person is a list of ``Primitive`` capsules (a sphere is a capsule with equal ends). Each person is first drawn
alone into its own ``Layer`` covering its whole projected extent, also outside the image (this gives the
amodal silhouette: full box, truncation, visible fraction); ``composite`` then merges layers into the scene with
a per-pixel depth test, so occlusion between parts and between people is exact up to the capsule approximation.

Labels follow LIP's 20 classes (``LIP_CLASSES``). Conventions: "left" is the person's own left; the neck is
``Face``; the skin of a bare arm/hand is ``Left-arm``/``Right-arm``; a bag is an object, not a person part: it
is drawn with label 0 (Background) and instance 0, and occludes whatever is behind it.
"""
from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np

from .body import POINT_INDEX, POINT_NAMES, project

LIP_CLASSES = ('Background', 'Hat', 'Hair', 'Glove', 'Sunglasses', 'Upper-clothes', 'Dress', 'Coat', 'Socks',
               'Pants', 'Jumpsuits', 'Scarf', 'Skirt', 'Face', 'Left-arm', 'Right-arm', 'Left-leg', 'Right-leg',
               'Left-shoe', 'Right-shoe')
LABEL = {name: i for i, name in enumerate(LIP_CLASSES)}
HEAD_LABELS = (LABEL['Hat'], LABEL['Hair'], LABEL['Sunglasses'], LABEL['Face'])

_AMBIENT = 0.38


class Primitive(NamedTuple):
    """A tapered capsule in the camera frame: axis ``a -> b`` (3,), radii ``ra``, ``rb`` (metres), LIP label,
    RGB colour, and the named points it encloses (used for keypoint visibility tolerances)."""

    a: np.ndarray
    b: np.ndarray
    ra: float
    rb: float
    label: int
    color: tuple
    joints: tuple = ()


@dataclass
class Layer:
    """What one object looks like drawn alone: a canvas whose pixel (0, 0) is image pixel (y0, x0).

    depth: (h, w) float32 camera depth in metres, ``inf`` where empty; label: (h, w) uint8; rgb: (h, w, 3)
    float32 in [0, 255]."""

    x0: int
    y0: int
    depth: np.ndarray
    label: np.ndarray
    rgb: np.ndarray

    @property
    def mask(self):
        return np.isfinite(self.depth)


def _unit(v):
    return v / max(np.linalg.norm(v), 1e-9)


def person_primitives(points, shape, attributes, colors):
    """Body and accessory primitives of one person.

    Args:
        points: (len(POINT_NAMES), 3) camera-frame points from ``forward_kinematics``.
        shape, attributes, colors: from ``sample_shape`` and ``sample_appearance``.

    Returns:
        (body, accessories): lists of ``Primitive``; body parts carry person labels, accessories (the bag) label 0.
    """
    P = {name: points[i] for i, name in enumerate(POINT_NAMES)}
    s, r = shape, shape['head_radius']
    skin, upper, lower = colors['skin'], colors['upper'], colors['lower']
    body = []

    def cap(a, b, ra, rb, label, color, joints=()):
        body.append(Primitive(np.asarray(a, float), np.asarray(b, float), float(ra), float(rb), LABEL[label],
                              color, joints))

    def lerp(a, b, t):
        return P[a] + t * (P[b] - P[a])

    # Head frame from the face points, so the hair and hat follow head yaw/pitch/roll.
    hc = P['head_center']
    up_h = _unit(P['head_top'] - hc)
    fwd_h = _unit(np.cross(_unit(P['left_ear'] - P['right_ear']), up_h))
    cap(hc, hc, r, r, 'Face', skin, ('head_center',))
    cap(P['neck'], hc - 0.3 * r * up_h, 0.42 * r, 0.42 * r, 'Face', skin, ('neck',))
    hair = colors['hair']
    cap(hc + 0.12 * r * up_h - 0.15 * r * fwd_h, hc + 0.12 * r * up_h - 0.15 * r * fwd_h, 1.03 * r, 1.03 * r,
        'Hair', hair)
    if attributes['hair'] == 'long':
        cap(hc - 0.35 * r * fwd_h, hc - 0.45 * r * fwd_h - 2.6 * r * up_h, 0.85 * r, 0.7 * r, 'Hair', hair)
    if attributes['hat']:
        crown = hc + 0.55 * r * up_h - 0.05 * r * fwd_h
        cap(crown, crown, 0.86 * r, 0.86 * r, 'Hat', colors['hat'])
        cap(hc + 0.5 * r * up_h + 0.5 * r * fwd_h, hc + 0.5 * r * up_h + 1.1 * r * fwd_h, 0.15 * r, 0.15 * r,
            'Hat', colors['hat'])

    # Torso: a spine capsule and two lateral ones, so its width changes with the viewing angle.
    spine_low = lerp('pelvis', 'neck', 0.25)
    cap(spine_low, P['neck'], s['torso_radius'], s['chest_radius'], 'Upper-clothes', upper, ('neck',))
    for side in ('left', 'right'):
        top = lerp('neck', f'{side}_shoulder', 0.5) - 0.12 * (P['neck'] - P['pelvis'])
        bottom = lerp('pelvis', f'{side}_hip', 0.75) + 0.2 * (P['neck'] - P['pelvis'])
        cap(bottom, top, s['chest_radius'], s['chest_radius'], 'Upper-clothes', upper)
    cap(P['left_hip'], P['right_hip'], s['pelvis_radius'], s['pelvis_radius'], 'Pants', lower,
        ('left_hip', 'right_hip', 'pelvis'))

    for side, arm, leg, shoe in (('left', 'Left-arm', 'Left-leg', 'Left-shoe'),
                                 ('right', 'Right-arm', 'Right-leg', 'Right-shoe')):
        sh, el, wr = f'{side}_shoulder', f'{side}_elbow', f'{side}_wrist'
        ua, fa = s['upper_arm_radius'], s['forearm_radius']
        if attributes['sleeve'] == 'short':
            cap(P[sh], lerp(sh, el, 0.5), 1.15 * ua, 1.1 * ua, 'Upper-clothes', upper, (sh,))
            cap(lerp(sh, el, 0.45), P[el], 0.97 * ua, 1.05 * fa, arm, skin, (el,))
            cap(P[el], P[wr], 1.05 * fa, 0.8 * fa, arm, skin, (el, wr))
        else:
            cap(P[sh], P[el], 1.15 * ua, 1.12 * 1.05 * fa, 'Upper-clothes', upper, (sh, el))
            cap(P[el], lerp(el, wr, 0.92), 1.12 * 1.05 * fa, 1.12 * 0.82 * fa, 'Upper-clothes', upper, (el,))
            cap(lerp(el, wr, 0.85), P[wr], 0.85 * fa, 0.8 * fa, arm, skin, (wr,))
        cap(P[wr], P[f'{side}_hand'], s['hand_radius'], 0.85 * s['hand_radius'], arm, skin, (wr, f'{side}_hand'))

        hp, kn, an, toe = f'{side}_hip', f'{side}_knee', f'{side}_ankle', f'{side}_toe'
        th, kr, ar = s['thigh_radius'], s['knee_radius'], s['ankle_radius']
        if attributes['lower_length'] == 'short':
            cap(P[hp], lerp(hp, kn, 0.55), 1.08 * th, 1.08 * (0.5 * th + 0.5 * kr), 'Pants', lower, (hp,))
            cap(lerp(hp, kn, 0.5), P[kn], 0.5 * th + 0.5 * kr, kr, leg, skin, (kn,))
            cap(P[kn], P[an], kr, ar, leg, skin, (kn, an))
        else:
            cap(P[hp], P[kn], 1.08 * th, 1.08 * kr, 'Pants', lower, (hp, kn))
            cap(P[kn], lerp(kn, an, 0.9), 1.08 * kr, 1.08 * ar, 'Pants', lower, (kn,))
            cap(lerp(kn, an, 0.85), P[an], ar, ar, leg, skin, (an,))
        cap(P[an], P[toe], 1.25 * ar, s['foot_radius'], shoe, colors['shoes'], (an, toe))

    accessories = []
    if attributes['bag']:
        left_t = _unit(P['left_shoulder'] - P['right_shoulder'])
        up_t = _unit(P['neck'] - P['pelvis'])
        fwd_t = _unit(np.cross(left_t, up_t))
        size = 0.06 * s['height']
        if attributes['bag_type'] == 'backpack':
            back = -(s['chest_radius'] + 0.8 * size) * fwd_t
            a, b = lerp('pelvis', 'neck', 0.75) + back, lerp('pelvis', 'neck', 0.35) + back
        else:
            a = P['left_hip'] + (s['pelvis_radius'] + 0.9 * size) * left_t + 0.05 * s['height'] * up_t
            b = a - 1.6 * size * up_t
        accessories.append(Primitive(a, b, size, size, LABEL['Background'], colors['bag']))
    return body, accessories


def visibility_tolerance(primitives, shape):
    """(len(POINT_NAMES),) depth tolerance (metres) for the keypoint visibility test.

    A joint lies on a capsule axis, so the surface in front of it is up to one radius nearer; it counts as visible
    when the front-most surface at its pixel is no nearer than that. Face points lie on the head sphere: a
    tolerance of 0.45 head radii keeps frontal ears visible and hides points on the far side of the head.
    ``head_top`` is visible from any side the top of the head is (hat and hair included)."""
    tol = np.zeros(len(POINT_NAMES))
    for prim in primitives:
        for name in prim.joints:
            tol[POINT_INDEX[name]] = max(tol[POINT_INDEX[name]], prim.ra, prim.rb)
    tol = 1.1 * tol + 0.01
    r = shape['head_radius']
    for name in ('nose', 'left_eye', 'right_eye', 'left_ear', 'right_ear'):
        tol[POINT_INDEX[name]] = 0.45 * r
    tol[POINT_INDEX['head_top']] = 1.5 * r
    return tol


def rasterise(primitives, camera, light):
    """Draw primitives into a new ``Layer`` that covers all of them (also outside the image).

    Args:
        primitives: list of ``Primitive`` (camera frame, all in front of the camera).
        camera: ``body.Camera``.
        light: (3,) unit vector from the surfaces towards the light, camera frame.
    """
    ends = np.stack([p.a for p in primitives] + [p.b for p in primitives])
    uv, z = project(ends, camera)
    radii = camera.f * np.array([p.ra for p in primitives] + [p.rb for p in primitives]) / z
    x0, y0 = (int(v) for v in np.floor((uv - radii[:, None]).min(axis=0)))
    x1, y1 = (int(v) for v in np.ceil((uv + radii[:, None]).max(axis=0)))
    h, w = y1 - y0 + 1, x1 - x0 + 1
    layer = Layer(x0, y0, np.full((h, w), np.inf, np.float32), np.zeros((h, w), np.uint8),
                  np.zeros((h, w, 3), np.float32))
    n = len(primitives)
    uv = uv - (x0, y0)
    light = tuple(float(v) for v in light)
    for i, prim in enumerate(primitives):
        _draw_capsule(layer, prim, uv[i], uv[n + i], float(z[i]), float(z[n + i]), float(radii[i]),
                      float(radii[n + i]), light)
    return layer


def _draw_capsule(layer, prim, pa, pb, za, zb, rpa, rpb, light):
    """Rasterise one capsule into ``layer`` (canvas pixel coordinates ``pa``, ``pb``) with a depth test.

    Per pixel: ``t`` = position of the nearest axis point in the image, ``d`` = distance to it, ``r(t)`` = the
    interpolated projected radius; inside when ``d < r``. The surface bulges towards the camera by
    ``R(t) * sqrt(1 - (d/r)^2)`` (R = radius in metres), and the same factor is the normal's z, used for
    Lambert shading."""
    h, w = layer.depth.shape
    xa = max(int(np.floor(min(pa[0] - rpa, pb[0] - rpb))), 0)
    xb = min(int(np.ceil(max(pa[0] + rpa, pb[0] + rpb))) + 1, w)
    ya = max(int(np.floor(min(pa[1] - rpa, pb[1] - rpb))), 0)
    yb = min(int(np.ceil(max(pa[1] + rpa, pb[1] + rpb))) + 1, h)
    if xa >= xb or ya >= yb:
        return
    # Python floats keep every array float32 (numpy 2 treats them as weak scalars).
    ax, ay = float(pa[0]), float(pa[1])
    abx, aby = float(pb[0]) - ax, float(pb[1]) - ay
    xs = np.arange(xa - ax, xb - ax, dtype=np.float32)[:xb - xa][None, :]
    ys = np.arange(ya - ay, yb - ay, dtype=np.float32)[:yb - ya][:, None]
    len2 = abx * abx + aby * aby
    if len2 > 1e-6:
        t = xs * (abx / len2) + ys * (aby / len2)
        np.minimum(np.maximum(t, 0.0, out=t), 1.0, out=t)
        dx, dy = xs - t * abx, ys - t * aby
    else:
        t = np.float32(0.0)
        dx, dy = np.broadcast_arrays(xs, ys)
    rad = rpa + t * (rpb - rpa)
    rho2 = (dx * dx + dy * dy) / (rad * rad)
    inside = rho2 < 1.0
    bulge = np.sqrt(np.maximum(1.0 - rho2, 0.0))
    depth = za + t * (zb - za) - (prim.ra + t * (prim.rb - prim.ra)) * bulge
    canvas_depth = layer.depth[ya:yb, xa:xb]
    draw = inside & (depth < canvas_depth)
    lambert = np.maximum((dx * light[0] + dy * light[1]) / rad - bulge * light[2], 0.0)
    shade = (_AMBIENT + (1.0 - _AMBIENT) * lambert)[..., None] * np.asarray(prim.color, np.float32)
    np.copyto(canvas_depth, depth, where=draw)
    np.copyto(layer.label[ya:yb, xa:xb], prim.label, where=draw)
    np.copyto(layer.rgb[ya:yb, xa:xb], shade, where=draw[..., None])


def render_background(rng, height, width):
    """Cluttered background (H, W, 3) uint8 RGB: a two-colour gradient, random rectangles, ellipses and lines.

    Clutter colours are drawn from the whole RGB cube, so they overlap garment colours on purpose: only shape
    and shading tell people apart from the background."""
    c0, c1 = rng.uniform(20, 235, size=(2, 3)).astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    # The gradient is linear, so an 8x smaller one bilinearly upsampled is the same image at a fraction of the cost.
    small = (max(width // 8, 2), max(height // 8, 2))
    ramp = (np.linspace(0.0, np.cos(angle), small[0], dtype=np.float32)[None, :]
            + np.linspace(0.0, np.sin(angle), small[1], dtype=np.float32)[:, None])
    ramp = (ramp - ramp.min()) / max(float(ramp.max() - ramp.min()), 1e-6)
    img = cv2.resize((c0 + (c1 - c0) * ramp[..., None]).astype(np.uint8), (width, height),
                     interpolation=cv2.INTER_LINEAR)
    scale = max(height, width)
    for _ in range(rng.integers(4, 14)):
        kind = rng.integers(3)
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        x, y = int(rng.integers(-width // 8, width)), int(rng.integers(-height // 8, height))
        if kind == 0:
            cv2.rectangle(img, (x, y), (x + int(rng.integers(8, scale // 2)), y + int(rng.integers(8, scale // 2))),
                          color, -1)
        elif kind == 1:
            axes = (int(rng.integers(4, scale // 5)), int(rng.integers(4, scale // 5)))
            cv2.ellipse(img, (x, y), axes, float(rng.uniform(0, 180)), 0, 360, color, -1, cv2.LINE_AA)
        else:
            end = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            cv2.line(img, (x, y), end, color, int(rng.integers(1, 5)), cv2.LINE_AA)
    return img


def composite(background, layers):
    """Merge layers into a scene with a per-pixel depth test.

    Args:
        background: (H, W, 3) uint8 RGB.
        layers: list of (Layer, instance_id); instance 0 = not a person (accessories).

    Returns:
        rgb (H, W, 3) float32, labels (H, W) uint8, instances (H, W) uint8, depth (H, W) float32 (inf = background).
    """
    height, width = background.shape[:2]
    rgb = background.astype(np.float32)
    labels = np.zeros((height, width), np.uint8)
    instances = np.zeros((height, width), np.uint8)
    depth = np.full((height, width), np.inf, np.float32)
    for layer, instance_id in layers:
        h, w = layer.depth.shape
        xa, ya = max(layer.x0, 0), max(layer.y0, 0)
        xb, yb = min(layer.x0 + w, width), min(layer.y0 + h, height)
        if xa >= xb or ya >= yb:
            continue
        src = (slice(ya - layer.y0, yb - layer.y0), slice(xa - layer.x0, xb - layer.x0))
        dst = (slice(ya, yb), slice(xa, xb))
        front = layer.depth[src] < depth[dst]
        depth[dst][front] = layer.depth[src][front]
        labels[dst][front] = layer.label[src][front]
        instances[dst][front] = instance_id
        rgb[dst][front] = layer.rgb[src][front]
    return rgb, labels, instances, depth
