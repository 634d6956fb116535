"""Surface mesh of the SynthHuman body: the stand-in for SMPL's assets (template, vertex hierarchy, up-sampling
matrices, joint regressor, adjacency) that Hulk's mesh path needs.

Geometry. The body is the union of 18 closed *parts* that mirror the renderer's body capsules
(``render.person_primitives``) at skin level (the radii of bare limbs, no clothes, hair or hat, so the mesh lies
inside every clothed silhouette): a head sphere and 17 tapered capsules (neck, spine, two flanks, pelvis, upper
arms, forearms, hands, thighs, shanks, feet). Each part is a lathe around its axis: a pole at each end and
rings of vertices in between. A capsule's 9 profile points (fine level) are: pole, 45-degree cap ring, the
equator ring at the axis start ``A``, rings at 1/4, 1/2 and 3/4 of the axis, the equator ring at the axis end
``B``, a cap ring and the far pole; the head's are 9 latitudes 22.5 degrees apart. Joints sit at capsule ends,
so every joint of ``MESH_JOINTS`` is the centre of an equator ring (or the head's top pole) for any body shape.

Hierarchy. Three nested levels (SMPL/GraphCMR: 431 -> 1723 -> 6890): fine = 9 profile points x 20 around,
intermediate = every second profile point and ring vertex (5 x 10), coarse = every second again (3 x 5). Per part
2 + 7*20 = 142 / 2 + 3*10 = 32 / 2 + 1*5 = 7 vertices, so ``BodyMesh.num_vertices`` = fine 2556, intermediate
576, coarse 126. Coarser vertices are a subset of finer ones (down-sampling = selection). Up-sampling is local
(each finer vertex from the bilinear corners on its part's (profile, around) grid and their coarse neighbours)
with weights fitted to the template (``_fit_upsample``): rows sum to 1, weights lie within about [-0.3, 1], and
coarse -> intermediate -> fine reproduces the template to ~0.1 mm (other body shapes to a few mm).

Skinning. Each part is rigid in one segment of ``body.segment_frames`` (hands ride on the forearms, feet on the
shanks), except the flanks, which blend from half pelvis / half torso at the bottom to torso at the top (linear
blend skinning, like the renderer's flank capsules that join hip and shoulder points). Because a joint's ring is
rigid in a segment that carries the joint, ``joint_regressor @ posed_vertices`` reproduces the posed joints up to
float rounding, for every shape and pose.

Frames. The template and ``posed_vertices(..., root_xyz=0, yaw=0)`` are in the level frame of ``body`` (``X``
right, ``Y`` down, ``Z`` away from the camera; the person faces the camera with their left on image right),
i.e. SMPL's body frame turned by pi about ``x``, which is how Hulk builds its template positional embedding.
The canonical pose is a T-pose (``CANONICAL_POSE``: arms abducted 90 degrees, everything else zero) of
``body.mean_shape()``, pelvis at the origin.

``body_model.npz`` keys (``BodyMesh.assets``; V = fine, Vi = intermediate, Vc = coarse vertex counts):

* ``template`` (V, 3), ``template_intermediate`` (Vi, 3), ``template_coarse`` (Vc, 3): float32 metres;
* ``faces`` (F, 3), ``faces_intermediate``, ``faces_coarse``: int32 triangles, counter-clockwise seen from
  outside (outward normals);
* ``upsample_intermediate_to_fine`` (V, Vi), ``upsample_coarse_to_intermediate`` (Vi, Vc): float32, rows sum 1;
* ``downsample_fine_to_intermediate`` (Vi, V), ``downsample_intermediate_to_coarse`` (Vc, Vi): float32 one-hot
  rows, and the same as indices ``downsample_fine_to_intermediate_index`` (Vi,), ``..._intermediate_to_coarse_index``
  (Vc,) int64;
* ``joint_regressor`` (14, V): float32, rows non-negative and summing to 1; ``joint_names`` (14,) str
  (``MESH_JOINTS``); ``template_joints`` (14, 3) float32;
* ``adjacency_coarse`` (Vc, Vc): uint8, symmetric, with self-loops (mesh edges within a part; 5-6 per row
  including the self-loop, Hulk's 431-vertex mask has about 7);
* ``flip_index`` (V,) int64: the vertex each vertex becomes under a left/right mirror;
* ``skin_weights`` (V, S) float32 over ``segment_names`` (S,) str; ``part_names`` (18,) str and ``vertex_part``
  (V,) int64; ``canonical_pose`` (D,) float64 radians over ``pose_names`` (D,) str.
"""
import numpy as np

from .body import POINT_INDEX, POSE_INDEX, POSE_NAMES, SEGMENTS, forward_kinematics, mean_shape, segment_frames

# The 14 evaluation joints of Hulk's mesh task: the H3.6M-17 regressor mapped to 14 (METRO/FastMETRO's
# H36M_J17_TO_J14 = [3, 2, 1, 4, 5, 6, 16, 15, 14, 11, 12, 13, 8, 10]), i.e. the LSP order; "neck" is H3.6M's
# joint 8 ("Neck", at the thorax) and "head_top" its joint 10 ("Head").
MESH_JOINTS = ('right_ankle', 'right_knee', 'right_hip', 'left_hip', 'left_knee', 'left_ankle', 'right_wrist',
               'right_elbow', 'right_shoulder', 'left_shoulder', 'left_elbow', 'left_wrist', 'neck', 'head_top')
PELVIS_JOINTS = (2, 3)  # mid-hip = the root of every root-relative quantity

LEVELS = ('fine', 'intermediate', 'coarse')
_PROFILE_POINTS = {'fine': 9, 'intermediate': 5, 'coarse': 3}  # per part, poles included
_AROUND = {'fine': 20, 'intermediate': 10, 'coarse': 5}        # vertices per ring

CANONICAL_POSE = np.zeros(len(POSE_NAMES))
CANONICAL_POSE[[POSE_INDEX['left_shoulder_abd'], POSE_INDEX['right_shoulder_abd']]] = np.pi / 2

PART_NAMES = ('head', 'neck', 'spine', 'left_flank', 'right_flank', 'pelvis') + tuple(
    f'{side}_{name}' for side in ('left', 'right')
    for name in ('upper_arm', 'forearm', 'hand', 'thigh', 'shank', 'foot'))  # the order of ``_parts``

_SEGMENT_INDEX = {name: i for i, name in enumerate(SEGMENTS)}
# Fine profile: axial fraction of a capsule's axis at each profile point (poles and caps lie beyond the ends).
_CAPSULE_T = np.array([0.0, 0.0, 0.0, 0.25, 0.5, 0.75, 1.0, 1.0, 1.0])
_A_EQUATOR, _B_EQUATOR = 2, 6
_UPSAMPLE_DAMPING = 1e-5  # m^2: pulls the fitted up-sampling weights towards bilinear ones


def _parts(shape, points, frames):
    """The 18 parts of a body in the canonical pose: list of dicts with ``name``, ``kind`` ('capsule' |
    'sphere'), axis ends ``a``, ``b`` (3,) (a sphere: centre twice), radii ``ra``, ``rb``, ``up`` (the sphere's
    pole axis), the segment weights at the two ends ``wa``, ``wb`` ({segment: weight}) and ``ref`` (the segment
    whose forward axis orients the rings)."""
    P = {name: points[i] for name, i in POINT_INDEX.items()}
    s, r = shape, shape['head_radius']
    head_up = frames['head'][1][:, 1]
    trunk = P['neck'] - P['pelvis']
    parts = [
        dict(name='head', kind='sphere', a=P['head_center'], b=P['head_center'], ra=r, rb=r, up=head_up,
             wa={'head': 1.0}, wb={'head': 1.0}, ref='head'),
        dict(name='neck', kind='capsule', a=P['neck'], b=P['head_center'] - 0.3 * r * head_up, ra=0.42 * r,
             rb=0.42 * r, wa={'head': 1.0}, wb={'head': 1.0}, ref='head'),
        dict(name='spine', kind='capsule', a=P['pelvis'] + 0.25 * trunk, b=P['neck'], ra=s['torso_radius'],
             rb=s['chest_radius'], wa={'torso': 1.0}, wb={'torso': 1.0}, ref='torso'),
    ]
    for side in ('left', 'right'):
        bottom = P['pelvis'] + 0.75 * (P[f'{side}_hip'] - P['pelvis']) + 0.2 * trunk
        top = P['neck'] + 0.5 * (P[f'{side}_shoulder'] - P['neck']) - 0.12 * trunk
        parts.append(dict(name=f'{side}_flank', kind='capsule', a=bottom, b=top, ra=s['chest_radius'],
                          rb=s['chest_radius'], wa={'pelvis': 0.5, 'torso': 0.5}, wb={'torso': 1.0}, ref='torso'))
    parts.append(dict(name='pelvis', kind='capsule', a=P['left_hip'], b=P['right_hip'], ra=s['pelvis_radius'],
                      rb=s['pelvis_radius'], wa={'pelvis': 1.0}, wb={'pelvis': 1.0}, ref='pelvis'))
    ua, fa, hr = s['upper_arm_radius'], s['forearm_radius'], s['hand_radius']
    th, kr, ar = s['thigh_radius'], s['knee_radius'], s['ankle_radius']
    for side in ('left', 'right'):
        limbs = (('upper_arm', 'shoulder', 'elbow', ua, fa, 'upper_arm'),
                 ('forearm', 'elbow', 'wrist', fa, 0.8 * fa, 'forearm'),
                 ('hand', 'wrist', 'hand', hr, 0.85 * hr, 'forearm'),
                 ('thigh', 'hip', 'knee', th, kr, 'thigh'),
                 ('shank', 'knee', 'ankle', kr, ar, 'shank'),
                 ('foot', 'ankle', 'toe', ar, s['foot_radius'], 'shank'))
        for name, start, end, ra, rb, segment in limbs:
            seg = f'{side}_{segment}'
            parts.append(dict(name=f'{side}_{name}', kind='capsule', a=P[f'{side}_{start}'], b=P[f'{side}_{end}'],
                              ra=ra, rb=rb, wa={seg: 1.0}, wb={seg: 1.0}, ref=seg))
    return parts


def _profile(part):
    """Fine profile of a part: axial offsets ``s`` from ``a`` along the axis and ring radii ``rho``, (9,) each."""
    if part['kind'] == 'sphere':
        lat = np.linspace(-np.pi / 2, np.pi / 2, _PROFILE_POINTS['fine'])
        return part['ra'] * np.sin(lat), part['ra'] * np.cos(lat)
    length = np.linalg.norm(part['b'] - part['a'])
    ra, rb, c45 = part['ra'], part['rb'], np.sqrt(0.5)
    s = np.array([-ra, -c45 * ra, 0.0, 0.25 * length, 0.5 * length, 0.75 * length, length, length + c45 * rb,
                  length + rb])
    rho = np.array([0.0, c45 * ra, ra, 0.75 * ra + 0.25 * rb, 0.5 * (ra + rb), 0.25 * ra + 0.75 * rb, rb,
                    c45 * rb, 0.0])
    return s, rho


def _axes(part, frames):
    """Unit axis ``u`` and ring axes ``e1``, ``e2`` (``e1, e2, u`` right-handed) of a part in the canonical pose."""
    u = part['up'] if part['kind'] == 'sphere' else part['b'] - part['a']
    u = u / np.linalg.norm(u)
    rot = frames[part['ref']][1]
    e1 = rot[:, 2] - (rot[:, 2] @ u) * u  # the segment's forward axis, orthogonalised
    if np.linalg.norm(e1) < 0.1:
        e1 = rot[:, 1] - (rot[:, 1] @ u) * u
    e1 /= np.linalg.norm(e1)
    return u, e1, np.cross(u, e1)


def _grid(level):
    """(profile index, around index) of each vertex of one part at ``level``; poles have around index 0."""
    n, m = _PROFILE_POINTS[level], _AROUND[level]
    rows = [(0, 0)] + [(k, a) for k in range(1, n - 1) for a in range(m)] + [(n - 1, 0)]
    return np.array(rows, dtype=np.int64)


def _part_index(level):
    """dict (profile index, around index) -> vertex index within one part at ``level``; poles answer any
    around index."""
    n, m = _PROFILE_POINTS[level], _AROUND[level]
    index = {}
    for i, (k, a) in enumerate(_grid(level)):
        if k in (0, n - 1):
            index.update({(k, b): i for b in range(m)})
        else:
            index[(k, a)] = i
    return index


def _part_faces(level):
    """(F, 3) triangles of one part at ``level``, outward (counter-clockwise seen from outside)."""
    n, m = _PROFILE_POINTS[level], _AROUND[level]
    idx = _part_index(level)
    faces = []
    for k in range(n - 1):
        for a in range(m):
            b = (a + 1) % m
            v00, v01, v10, v11 = idx[(k, a)], idx[(k, b)], idx[(k + 1, a)], idx[(k + 1, b)]
            # Around a pole two of the four corners coincide: keep the one non-degenerate triangle.
            if k > 0:
                faces.append((v00, v01, v11))
            if k < n - 2:
                faces.append((v00, v11, v10))
    return np.array(faces, dtype=np.int64)


def _part_bilinear(lo, hi):
    """(n_hi, n_lo) bilinear up-sampling of one part from level ``lo`` to the next finer level ``hi`` on the
    (profile, around) grid: the prior and the support of ``_fit_upsample``."""
    lo_index, hi_grid = _part_index(lo), _grid(hi)
    m_lo = _AROUND[lo]
    up = np.zeros((len(hi_grid), len(_grid(lo))))
    for i, (k, a) in enumerate(hi_grid):
        ks = (k // 2,) if k % 2 == 0 else ((k - 1) // 2, (k + 1) // 2)
        as_ = (a // 2,) if a % 2 == 0 else ((a - 1) // 2, ((a + 1) // 2) % m_lo)
        for kk in ks:
            for aa in as_:
                up[i, lo_index[(kk, aa)]] += 1.0 / (len(ks) * len(as_))
    return up


def _part_downsample(hi, lo):
    """(n_lo,) indices of the level-``hi`` vertices of one part that form level ``lo``."""
    hi_index = _part_index(hi)
    return np.array([hi_index[(2 * k, 2 * a)] for k, a in _grid(lo)], dtype=np.int64)


def _fit_upsample(prior, adjacency_lo, coarse, fine, damping=_UPSAMPLE_DAMPING):
    """Up-sampling weights fitted to a template: per fine vertex, the weights (sum 1) over the support of the
    bilinear ``prior`` row and its neighbours in the coarser mesh that minimise
    ``|sum_j w_j x_j - v|^2 + damping * |w - prior|^2`` (metres^2).

    Bilinear interpolation cuts corners on the curved caps and rings (up to a third of a radius, ~3 cm);
    the fitted weights reproduce the template to ~0.1 mm and other body shapes to a few mm while staying close to
    the prior (weights within about [-0.3, 1]).

    Args:
        prior: (n_fine, n_coarse) bilinear weights. adjacency_lo: (n_coarse, n_coarse) with self-loops.
        coarse: (n_coarse, 3) and fine: (n_fine, 3) template vertices.
    """
    out = np.zeros_like(prior)
    reach = adjacency_lo.astype(bool)
    for i, v in enumerate(fine):
        support = np.flatnonzero(reach[prior[i] > 0].any(axis=0))
        k = len(support)
        d = coarse[support] - v
        # Equality-constrained least squares via its KKT system.
        kkt = np.zeros((k + 1, k + 1))
        kkt[:k, :k] = 2 * (d @ d.T + damping * np.eye(k))
        kkt[:k, k] = kkt[k, :k] = 1.0
        rhs = np.append(2 * damping * prior[i, support], 1.0)
        out[i, support] = np.linalg.solve(kkt, rhs)[:k]
    return out


def _block_diag(blocks):
    rows, cols = sum(b.shape[0] for b in blocks), sum(b.shape[1] for b in blocks)
    out = np.zeros((rows, cols))
    r = c = 0
    for b in blocks:
        out[r:r + b.shape[0], c:c + b.shape[1]] = b
        r, c = r + b.shape[0], c + b.shape[1]
    return out


class BodyMesh:
    """The body surface mesh: shape-independent topology (built once) and per-shape geometry.

    Attributes (fine level unless named): ``num_vertices`` dict level -> count; ``faces`` dict level -> (F, 3)
    int64; ``downsample_index`` dict ('fine', 'intermediate') / ('intermediate', 'coarse') -> indices;
    ``upsample`` dict ('intermediate', 'fine') / ('coarse', 'intermediate') -> (n_hi, n_lo) float64;
    ``joint_regressor`` (14, V); ``skin_weights`` (V, len(SEGMENTS)); ``vertex_part`` (V,).
    """

    def __init__(self):
        grid = _grid('fine')
        per_part = len(grid)
        num_parts = len(PART_NAMES)
        self.num_vertices = {level: num_parts * len(_grid(level)) for level in LEVELS}
        self.vertex_part = np.repeat(np.arange(num_parts), per_part)
        self.faces = {level: np.concatenate([_part_faces(level) + p * len(_grid(level))
                                             for p in range(num_parts)]) for level in LEVELS}
        self.downsample_index = {
            (hi, lo): np.concatenate([_part_downsample(hi, lo) + p * len(_grid(hi)) for p in range(num_parts)])
            for hi, lo in (('fine', 'intermediate'), ('intermediate', 'coarse'))}

        # Skin weights: linear in the axial fraction between the part's end weights (constant for rigid parts).
        shape = mean_shape()
        parts = _parts(shape, forward_kinematics(shape, CANONICAL_POSE, np.zeros(3), 0.0),
                       self._frames(shape, CANONICAL_POSE))
        t = np.where([p['kind'] == 'sphere' for p in parts], 0.0, 1.0)[:, None] * _CAPSULE_T[grid[:, 0]][None]
        self.skin_weights = np.zeros((self.num_vertices['fine'], len(SEGMENTS)))
        for p, part in enumerate(parts):
            rows = slice(p * per_part, (p + 1) * per_part)
            for name, w in part['wa'].items():
                self.skin_weights[rows, _SEGMENT_INDEX[name]] += w * (1 - t[p])
            for name, w in part['wb'].items():
                self.skin_weights[rows, _SEGMENT_INDEX[name]] += w * t[p]

        self.joint_regressor = self._regressor()

        template = {'fine': self.rest_vertices(shape)}
        template['intermediate'] = template['fine'][self.downsample_index[('fine', 'intermediate')]]
        template['coarse'] = template['intermediate'][self.downsample_index[('intermediate', 'coarse')]]
        self.upsample = {}
        for lo, hi in (('intermediate', 'fine'), ('coarse', 'intermediate')):
            prior = _block_diag([_part_bilinear(lo, hi)] * num_parts)
            self.upsample[(lo, hi)] = _fit_upsample(prior, self.adjacency(lo), template[lo], template[hi])

    # ------------------------------------------------------------------------------------------- topology

    def _ring(self, part, profile_index):
        """Fine vertex indices of one ring (or pole) of a part."""
        p = PART_NAMES.index(part)
        offset = p * len(_grid('fine'))
        return offset + np.flatnonzero(_grid('fine')[:, 0] == profile_index)

    def _regressor(self):
        """(14, V): each joint = the mean of the equator rings centred on it (one or two parts carry the joint)."""
        last = _PROFILE_POINTS['fine'] - 1
        rings = {'neck': [('neck', _A_EQUATOR), ('spine', _B_EQUATOR)], 'head_top': [('head', last)]}
        for side in ('left', 'right'):
            rings.update({
                f'{side}_ankle': [(f'{side}_shank', _B_EQUATOR), (f'{side}_foot', _A_EQUATOR)],
                f'{side}_knee': [(f'{side}_thigh', _B_EQUATOR), (f'{side}_shank', _A_EQUATOR)],
                f'{side}_hip': [(f'{side}_thigh', _A_EQUATOR),
                                ('pelvis', _A_EQUATOR if side == 'left' else _B_EQUATOR)],
                f'{side}_wrist': [(f'{side}_forearm', _B_EQUATOR), (f'{side}_hand', _A_EQUATOR)],
                f'{side}_elbow': [(f'{side}_upper_arm', _B_EQUATOR), (f'{side}_forearm', _A_EQUATOR)],
                f'{side}_shoulder': [(f'{side}_upper_arm', _A_EQUATOR)],
            })
        reg = np.zeros((len(MESH_JOINTS), self.num_vertices['fine']))
        for j, name in enumerate(MESH_JOINTS):
            for part, k in rings[name]:
                ring = self._ring(part, k)
                reg[j, ring] += 1.0 / (len(rings[name]) * len(ring))
        return reg

    def adjacency(self, level='coarse'):
        """(n, n) uint8 vertex adjacency of ``level``: mesh edges plus self-loops."""
        n = self.num_vertices[level]
        adj = np.eye(n, dtype=np.uint8)
        f = self.faces[level]
        for i, j in ((0, 1), (1, 2), (2, 0)):
            adj[f[:, i], f[:, j]] = 1
            adj[f[:, j], f[:, i]] = 1
        return adj

    # ------------------------------------------------------------------------------------------- geometry

    @staticmethod
    def _frames(shape, pose):
        origins, rotations = segment_frames(shape, pose, np.zeros(3), 0.0)
        return {name: (origins[i], rotations[i]) for i, name in enumerate(SEGMENTS)}

    def rest_vertices(self, shape):
        """(V, 3) fine vertices of ``shape`` in the canonical pose (level frame, yaw 0, pelvis at the origin)."""
        frames = self._frames(shape, CANONICAL_POSE)
        parts = _parts(shape, forward_kinematics(shape, CANONICAL_POSE, np.zeros(3), 0.0), frames)
        grid = _grid('fine')
        theta = 2 * np.pi * grid[:, 1] / _AROUND['fine']
        cos, sin = np.cos(theta)[:, None], np.sin(theta)[:, None]
        out = []
        for part in parts:
            s, rho = _profile(part)
            u, e1, e2 = _axes(part, frames)
            s, rho = s[grid[:, 0], None], rho[grid[:, 0], None]
            out.append(part['a'] + s * u + rho * (cos * e1 + sin * e2))
        return np.concatenate(out)

    def posed_vertices(self, shape, pose, root_xyz, yaw):
        """(V, 3) fine vertices of a person (metres), in the frame of ``root_xyz`` like
        ``body.forward_kinematics(shape, pose, root_xyz, yaw)``.

        Linear blend skinning: v = sum_s w_s (R_s R0_s^T (v0 - o0_s) + o_s) with the rest (``0``) and posed
        segment frames of ``body.segment_frames``."""
        rest = self.rest_vertices(shape)
        o0, r0 = segment_frames(shape, CANONICAL_POSE, np.zeros(3), 0.0)
        o1, r1 = segment_frames(shape, pose, root_xyz, yaw)
        rel = r1 @ r0.transpose(0, 2, 1)                # (S, 3, 3) = R_s R0_s^T
        shift = o1 - np.einsum('sij,sj->si', rel, o0)   # (S, 3)
        # Every vertex moved by every segment in one product: (V, 3) @ (3, S*3) -> (V, S, 3).
        moved = (rest @ rel.transpose(2, 0, 1).reshape(3, -1)).reshape(len(rest), -1, 3) + shift
        return np.einsum('vs,vsi->vi', self.skin_weights, moved)

    def flip_index(self):
        """(V,) index of each fine vertex's mirror image (x -> -x) on the symmetric canonical template."""
        template = self.rest_vertices(mean_shape())
        mirrored = template * np.array([-1.0, 1.0, 1.0])
        index = np.empty(len(template), dtype=np.int64)
        # Match within the mirrored part: parts touching at a joint share ring positions.
        for p, name in enumerate(PART_NAMES):
            q = PART_NAMES.index(name.replace('left', 'RIGHT').replace('right', 'left').replace('RIGHT', 'right'))
            src, dst = np.flatnonzero(self.vertex_part == p), np.flatnonzero(self.vertex_part == q)
            dist2 = ((mirrored[src, None, :] - template[None, dst]) ** 2).sum(-1)
            index[src] = dst[dist2.argmin(axis=1)]
            if dist2.min(axis=1).max() > 1e-12:
                raise RuntimeError(f'the canonical template is not left/right symmetric at part {name!r}')
        return index

    def assets(self):
        """The arrays of ``body_model.npz`` (module docstring)."""
        template = self.rest_vertices(mean_shape())
        down_fi = self.downsample_index[('fine', 'intermediate')]
        down_ic = self.downsample_index[('intermediate', 'coarse')]
        joints = forward_kinematics(mean_shape(), CANONICAL_POSE, np.zeros(3), 0.0)
        f32 = np.float32
        return dict(
            template=template.astype(f32), template_intermediate=template[down_fi].astype(f32),
            template_coarse=template[down_fi][down_ic].astype(f32),
            faces=self.faces['fine'].astype(np.int32), faces_intermediate=self.faces['intermediate'].astype(np.int32),
            faces_coarse=self.faces['coarse'].astype(np.int32),
            upsample_intermediate_to_fine=self.upsample[('intermediate', 'fine')].astype(f32),
            upsample_coarse_to_intermediate=self.upsample[('coarse', 'intermediate')].astype(f32),
            downsample_fine_to_intermediate=np.eye(self.num_vertices['fine'], dtype=f32)[down_fi],
            downsample_intermediate_to_coarse=np.eye(self.num_vertices['intermediate'], dtype=f32)[down_ic],
            downsample_fine_to_intermediate_index=down_fi, downsample_intermediate_to_coarse_index=down_ic,
            joint_regressor=self.joint_regressor.astype(f32), joint_names=np.array(MESH_JOINTS),
            template_joints=joints[[POINT_INDEX[j] for j in MESH_JOINTS]].astype(f32),
            adjacency_coarse=self.adjacency('coarse'), flip_index=self.flip_index(),
            skin_weights=self.skin_weights.astype(f32), segment_names=np.array(SEGMENTS),
            part_names=np.array(PART_NAMES), vertex_part=self.vertex_part,
            canonical_pose=CANONICAL_POSE.copy(), pose_names=np.array(POSE_NAMES))


def joints_from_points(points):
    """(..., 14, 3) ``MESH_JOINTS`` from ``body.forward_kinematics`` points (..., len(POINT_NAMES), 3)."""
    return np.asarray(points)[..., [POINT_INDEX[j] for j in MESH_JOINTS], :]
