"""The body-model assets of the mesh task and the fixed (not learned) operations Hulk's mesh pathway does with them.

Hulk predicts a coarse mesh and 3-D joints directly (no SMPL parameters) but needs a body model for everything around
that (spec §2.8, §2.9, §3.3): the template whose joints and coarse vertices give the decoder PE of the label tokens,
the coarse adjacency of the attention mask, the fixed intermediate -> fine up-sampling, the joint regressor (joints
"from the mesh", and the pelvis every mesh is expressed relative to), the down-sampling of ground-truth meshes and
the intermediate mesh's faces / edges of the edge-length and normal losses.

With SMPL these are licensed files (the SMPL model, GraphCMR's ``mesh_downsampling.npz``, METRO's H3.6M regressor,
FastMETRO's 1723-vertex faces / edges and 431-vertex adjacency), never stored in the repository or in a weights
file: :func:`smpl_body_model` turns them into one ``body_model.npz`` (``tools/dataset_converters/
smpl_to_hulk_body_model.py``), the same layout as SynthHuman's stand-in (``hulk_mm.datasets.synthetic.mesh_model``,
keys listed there), and :class:`BodyModel` reads it from a config value. Vertex counts come from the assets: SMPL
6890 fine / 1723 intermediate / 431 coarse, SynthHuman 2556 / 576 / 126.

Keys :func:`load_body_model` requires (V fine, Vi intermediate, Vc coarse vertices, J joints):

* ``template`` (V, 3): the T-pose mesh in the frame of the PE (SMPL turned by pi about x: x right, y down, z away);
* ``downsample_fine_to_intermediate_index`` (Vi,), ``downsample_intermediate_to_coarse_index`` (Vc,): the
  hierarchy (SMPL's GraphCMR down-sampling matrices select vertices, so indices are exact);
* ``upsample_intermediate_to_fine`` (V, Vi): the fixed up-sampling (GraphCMR ``U[0]`` for SMPL);
* ``joint_regressor`` (J, V): the evaluation joints (SMPL: H3.6M-17 regressor rows ``H36M_J17_TO_J14``);
* ``adjacency_coarse`` (Vc, Vc): non-zero = adjacent, self-loops included;
* ``faces_intermediate`` (F, 3);

and optionally ``pelvis_regressor`` (V,) (SMPL: the H3.6M pelvis row; default: the mean of the hip rows, i.e. the
mid-hip) and ``edges_intermediate`` (E, 2) (default: the unique edges of ``faces_intermediate``).
"""
from __future__ import annotations

import io
import os.path as osp
from collections.abc import Mapping

import numpy as np
import scipy.sparse
import torch
import torch.nn as nn
from mmengine.fileio import get as get_bytes
from torch import Tensor

from hulk_mm.datasets.synthetic.mesh_model import MESH_JOINTS

ROOT_JOINTS = (2, 3)  # right and left hip of the 14 LSP joints: their mid-point is the root of token joints
REQUIRED_KEYS = ('template', 'downsample_fine_to_intermediate_index', 'downsample_intermediate_to_coarse_index',
                 'upsample_intermediate_to_fine', 'joint_regressor', 'adjacency_coarse', 'faces_intermediate')
OPTIONAL_KEYS = ('pelvis_regressor', 'edges_intermediate')

# SMPL -> Hulk: official constants (config_smpl.py of the official code, from METRO/GraphCMR).
H36M_J17_TO_J14 = (3, 2, 1, 4, 5, 6, 16, 15, 14, 11, 12, 13, 8, 10)
H36M_PELVIS = 0
TEMPLATE_ROTATION = 3.1416  # axis-angle about x of the official template ("rectify upside down"); not exactly pi
SMPL_DATA_FILES = dict(h36m_regressor='J_regressor_h36m_correct.npy', mesh_sampling='mesh_downsampling.npz',
                       faces_intermediate='smpl_1723_faces.npy', edges_intermediate='smpl_1723_edges.npy',
                       adjacency_indices='smpl_431_adjmat_indices.pt', adjacency_values='smpl_431_adjmat_values.pt',
                       adjacency_size='smpl_431_adjmat_size.pt')


def load_body_model(source: str | Mapping) -> dict[str, np.ndarray]:
    """Read and check body-model assets.

    Args:
        source: path of a ``body_model.npz`` (read through ``mmengine.fileio``), or a mapping key -> array.

    Returns:
        the arrays (numpy) of the keys listed in the module docstring, optional ones filled in; other keys of the
        source are ignored.
    """
    keys = REQUIRED_KEYS + OPTIONAL_KEYS  # only these are read: the file may hold more (dense matrices, names)
    if isinstance(source, Mapping):
        arrays = {k: np.asarray(v) for k, v in source.items() if k in keys}
        where = 'body-model assets'
    else:
        with np.load(io.BytesIO(get_bytes(source))) as npz:
            arrays = {k: npz[k] for k in npz.files if k in keys}
        where = repr(source)
    missing = [k for k in REQUIRED_KEYS if k not in arrays]
    if missing:
        raise KeyError(f'{where} lack {", ".join(missing)} (see hulk_mm.models.body_model; SMPL users build the '
                       f'file with tools/dataset_converters/smpl_to_hulk_body_model.py)')
    v = len(arrays['template'])
    vi = len(arrays['downsample_fine_to_intermediate_index'])
    vc = len(arrays['downsample_intermediate_to_coarse_index'])
    shapes = dict(template=(v, 3), upsample_intermediate_to_fine=(v, vi), adjacency_coarse=(vc, vc))
    for key, shape in shapes.items():
        if arrays[key].shape != shape:
            raise ValueError(f'{where}: {key} has shape {arrays[key].shape}, expected {shape} for {v} fine / {vi} '
                             f'intermediate / {vc} coarse vertices')
    if arrays['joint_regressor'].ndim != 2 or arrays['joint_regressor'].shape[1] != v:
        raise ValueError(f'{where}: joint_regressor has shape {arrays["joint_regressor"].shape}, expected (J, {v})')
    for key, n in (('downsample_fine_to_intermediate_index', v), ('downsample_intermediate_to_coarse_index', vi),
                   ('faces_intermediate', vi), ('edges_intermediate', vi)):
        if key in arrays and arrays[key].size and not 0 <= arrays[key].min() <= arrays[key].max() < n:
            raise ValueError(f'{where}: {key} indexes outside [0, {n})')
    out = dict(arrays)
    if 'pelvis_regressor' not in out:
        out['pelvis_regressor'] = arrays['joint_regressor'][list(ROOT_JOINTS)].mean(axis=0)
    if 'edges_intermediate' not in out:
        out['edges_intermediate'] = edges_of(arrays['faces_intermediate'])
    return out


def edges_of(faces: np.ndarray) -> np.ndarray:
    """(E, 2) unique undirected edges (smaller index first) of (F, 3) triangles."""
    pairs = np.asarray(faces, dtype=np.int64)[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2)
    return np.unique(np.sort(pairs, axis=1), axis=0)


def padded_rows(matrix: np.ndarray) -> tuple[Tensor, Tensor]:
    """A sparse (N, M) matrix as per-row (N, K) column indices and weights, K = the most non-zeros of a row (padding:
    index 0, weight 0); ``(weight[..., None] * x[:, index]).sum(-2)`` is then ``matrix @ x`` for x (B, M, C)."""
    csr = scipy.sparse.csr_matrix(np.asarray(matrix, dtype=np.float32))
    csr.eliminate_zeros()
    counts = np.diff(csr.indptr)
    rows = np.repeat(np.arange(csr.shape[0]), counts)
    slots = np.arange(csr.nnz) - csr.indptr[rows]
    index = np.zeros((csr.shape[0], max(int(counts.max(initial=0)), 1)), dtype=np.int64)
    weight = np.zeros(index.shape, dtype=np.float32)
    index[rows, slots], weight[rows, slots] = csr.indices, csr.data
    return torch.from_numpy(index), torch.from_numpy(weight)


class BodyModel(nn.Module):
    """The fixed operations of Hulk's mesh pathway on three nested vertex levels (fine V, intermediate Vi, coarse Vc).

    Every tensor is a non-persistent buffer: the assets come from their file (licensed for SMPL) at build time and
    are never part of a weights file (spec §8.2: the official SMPL buffers are dropped and reloaded from assets).

    Args:
        source: a ``body_model.npz`` path or a mapping of arrays (:func:`load_body_model`).
    """

    def __init__(self, source: str | Mapping):
        super().__init__()
        assets = load_body_model(source)
        buffers = dict(
            template=torch.as_tensor(assets['template'], dtype=torch.float32),
            fine_to_intermediate=torch.as_tensor(assets['downsample_fine_to_intermediate_index'], dtype=torch.long),
            intermediate_to_coarse=torch.as_tensor(assets['downsample_intermediate_to_coarse_index'],
                                                   dtype=torch.long),
            joint_regressor=torch.as_tensor(assets['joint_regressor'], dtype=torch.float32),
            pelvis_regressor=torch.as_tensor(assets['pelvis_regressor'], dtype=torch.float32),
            adjacency=torch.as_tensor(assets['adjacency_coarse'] != 0),
            faces=torch.as_tensor(assets['faces_intermediate'], dtype=torch.long),
            edges=torch.as_tensor(assets['edges_intermediate'], dtype=torch.long))
        # Up-sampling as a gather over each fine vertex's few intermediate neighbours (SMPL: 3), not a dense
        # (V, Vi) product: the same sums, 600x less memory and work at SMPL size.
        buffers['upsample_index'], buffers['upsample_weight'] = padded_rows(assets['upsample_intermediate_to_fine'])
        for name, value in buffers.items():
            self.register_buffer(name, value, persistent=False)
        self.num_vertices = dict(fine=len(self.template), intermediate=len(self.fine_to_intermediate),
                                 coarse=len(self.intermediate_to_coarse))
        self.num_joints = len(self.joint_regressor)

    def downsample(self, fine: Tensor) -> tuple[Tensor, Tensor]:
        """(B, V, 3) fine vertices -> intermediate (B, Vi, 3) and coarse (B, Vc, 3) vertices."""
        intermediate = fine[:, self.fine_to_intermediate]
        return intermediate, intermediate[:, self.intermediate_to_coarse]

    def upsample(self, intermediate: Tensor) -> Tensor:
        """(B, Vi, 3) -> (B, V, 3) with the fixed up-sampling matrix."""
        return (self.upsample_weight[..., None] * intermediate[:, self.upsample_index]).sum(-2)

    def joints(self, fine: Tensor) -> tuple[Tensor, Tensor]:
        """(B, V, 3) fine vertices -> regressed joints (B, J, 3) and pelvis (B, 3)."""
        return (torch.einsum('jv,bvc->bjc', self.joint_regressor, fine),
                torch.einsum('v,bvc->bc', self.pelvis_regressor, fine))

    def template_points(self) -> Tensor:
        """(J + Vc, 3): the template's joints and coarse vertices relative to its pelvis (the points of the label
        tokens after the camera token; official ``prepare_smpl_PE``)."""
        joints, pelvis = self.joints(self.template[None])
        coarse = self.downsample(self.template[None])[1]
        return torch.cat([joints, coarse], dim=1)[0] - pelvis


# ----------------------------------------------------------------------------------------------------------------
# SMPL + GraphCMR / METRO / FastMETRO files -> body_model.npz
# ----------------------------------------------------------------------------------------------------------------
def smpl_template(smpl_model: str) -> tuple[np.ndarray, np.ndarray]:
    """The official template mesh: SMPL (via ``smplx``) with zero shape and body pose and the global rotation
    (3.1416, 0, 0), i.e. turned upside up about x (y down, z away from the viewer), as the official
    ``prepare_smpl_PE`` builds it.

    Args:
        smpl_model: an SMPL model file ``smplx.SMPL`` reads (a chumpy-free neutral ``.pkl``).

    Returns:
        template vertices (V, 3) float32 and the model's faces (F, 3) int64.
    """
    import smplx
    model = smplx.SMPL(smpl_model, gender='neutral')
    with torch.no_grad():
        out = model(global_orient=torch.tensor([[TEMPLATE_ROTATION, 0.0, 0.0]]))
    return out.vertices[0].numpy().astype(np.float32), np.asarray(model.faces, dtype=np.int64)


def smpl_body_model(smpl_model: str, data_dir: str) -> dict[str, np.ndarray]:
    """The ``body_model.npz`` arrays of SMPL, as Hulk's mesh task uses them.

    Args:
        smpl_model: the SMPL neutral model file (read with ``smplx``; licensed, from the SMPL website).
        data_dir: the folder of the GraphCMR / METRO / FastMETRO files the official code ships in
            ``core/data/datasets/images/smpl_data_tools/smpl_modeling/data/`` (``SMPL_DATA_FILES``):
            ``J_regressor_h36m_correct.npy`` (17, 6890), ``mesh_downsampling.npz`` (GraphCMR: lists ``U``, ``D``,
            ``F`` of sparse up/down-sampling matrices and faces per level), ``smpl_1723_faces.npy``,
            ``smpl_1723_edges.npy`` and ``smpl_431_adjmat_{indices,values,size}.pt``.

    Returns:
        the arrays of the SynthHuman ``body_model.npz`` layout that SMPL defines (``hulk_mm.datasets.synthetic
        .mesh_model``) plus ``pelvis_regressor`` and ``edges_intermediate``.
    """
    path = {k: osp.join(data_dir, name) for k, name in SMPL_DATA_FILES.items()}
    template, faces = smpl_template(smpl_model)
    h36m = np.load(path['h36m_regressor']).astype(np.float32)
    with np.load(path['mesh_sampling'], allow_pickle=True, encoding='latin1') as sampling:
        up, down = sampling['U'], sampling['D']  # only these keys: 'M' pickles GraphCMR's own mesh class
        faces_levels = sampling['F'] if 'F' in sampling.files else None
    fine_to_int, int_to_coarse = (_selection_index(d, name) for d, name in zip(down[:2], ('D[0]', 'D[1]')))
    indices = torch.load(path['adjacency_indices'], weights_only=True)
    values = torch.load(path['adjacency_values'], weights_only=True)
    size = torch.load(path['adjacency_size'], weights_only=True)
    adjacency = np.zeros(tuple(size), dtype=bool)
    adjacency[tuple(indices.numpy())] = values.numpy() != 0
    v, vi, vc = len(template), len(fine_to_int), len(int_to_coarse)
    joint_regressor = h36m[list(H36M_J17_TO_J14)]
    out = dict(
        template=template, template_intermediate=template[fine_to_int],
        template_coarse=template[fine_to_int][int_to_coarse], faces=faces.astype(np.int32),
        faces_intermediate=np.load(path['faces_intermediate']).astype(np.int32),
        edges_intermediate=np.load(path['edges_intermediate']).astype(np.int64),
        upsample_intermediate_to_fine=up[0].astype(np.float32).toarray(),
        upsample_coarse_to_intermediate=up[1].astype(np.float32).toarray(),
        downsample_fine_to_intermediate=_one_hot(fine_to_int, v), downsample_intermediate_to_coarse=_one_hot(
            int_to_coarse, vi),
        downsample_fine_to_intermediate_index=fine_to_int, downsample_intermediate_to_coarse_index=int_to_coarse,
        joint_regressor=joint_regressor, pelvis_regressor=h36m[H36M_PELVIS], joint_names=np.array(MESH_JOINTS),
        template_joints=joint_regressor @ template, adjacency_coarse=adjacency.astype(np.uint8))
    if faces_levels is not None and len(faces_levels) > 2:
        out['faces_coarse'] = np.asarray(faces_levels[2], dtype=np.int32)
    load_body_model(out)  # the same checks a pathway does
    if (v, vi, vc) != (6890, 1723, 431):
        raise ValueError(f'SMPL assets have {v} / {vi} / {vc} vertices, expected 6890 / 1723 / 431')
    return out


def _selection_index(matrix, name: str) -> np.ndarray:
    """(n, N) sparse down-sampling matrix whose rows each select one vertex -> (n,) selected indices."""
    csr = scipy.sparse.csr_matrix(matrix)
    csr.eliminate_zeros()
    if not (np.diff(csr.indptr) == 1).all() or not np.allclose(csr.data, 1.0):
        raise ValueError(f'GraphCMR down-sampling matrix {name} is not a vertex selection (one 1 per row)')
    return csr.indices.astype(np.int64)


def _one_hot(index: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros((len(index), n), dtype=np.float32)
    out[np.arange(len(index)), index] = 1.0
    return out


def stand_in_body_model(num_vertices: tuple[int, int, int] = (6890, 1723, 431), num_joints: int = 14,
                        seed: int = 0) -> dict[str, np.ndarray]:
    """Random assets with the structure and sizes of a real body model (default: SMPL's 6890 / 1723 / 431 vertices),
    for tools that measure shapes, FLOPs or time (values do not matter there), so they run without licensed files.

    Nested levels by index selection, a sparse row-stochastic up-sampling that keeps the intermediate vertices (as
    GraphCMR's does), a symmetric coarse adjacency with self-loops, a template inside the PE's ranges.
    """
    rng = np.random.default_rng(seed)
    v, vi, vc = num_vertices
    fine_to_int = np.sort(rng.choice(v, vi, replace=False))
    cols = rng.integers(0, vi, (v, 3))
    up = scipy.sparse.csr_matrix((rng.dirichlet(np.ones(3), v).ravel(), cols.ravel(), np.arange(v + 1) * 3),
                                 shape=(v, vi)).toarray()
    up[fine_to_int] = np.eye(vi)
    inter = np.concatenate([rng.uniform(-0.45, 0.45, (vi, 2)), rng.uniform(-0.09, 0.09, (vi, 1))], axis=1)
    neighbours = rng.integers(0, vc, (vc, 3))
    adjacency = np.eye(vc, dtype=np.uint8)
    adjacency[np.repeat(np.arange(vc), 3), neighbours.ravel()] = 1
    regressor = np.zeros((num_joints, v), np.float32)
    regressor[np.repeat(np.arange(num_joints), 4), rng.integers(0, v, num_joints * 4)] = 0.25
    return dict(template=(up @ inter).astype(np.float32), downsample_fine_to_intermediate_index=fine_to_int,
                downsample_intermediate_to_coarse_index=np.sort(rng.choice(vi, vc, replace=False)),
                upsample_intermediate_to_fine=up.astype(np.float32), joint_regressor=regressor,
                adjacency_coarse=np.maximum(adjacency, adjacency.T),
                faces_intermediate=np.sort(rng.integers(0, vi, (2 * vi, 3)), axis=1))
