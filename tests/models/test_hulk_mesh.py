"""The Hulk mesh pathway: body-model assets and the SMPL converter, template PE, attention mask, shapes, gradients,
learning, prediction for MeshMetric, errors, and fidelity to the official SMPL path (tests/data/official/mesh/)."""
from __future__ import annotations

import json
import os
import os.path as osp
import pickle

import numpy as np
import pytest
import scipy.sparse
import torch
from mmengine.registry import init_default_scope
from mmengine.structures import BaseDataElement

from hulk_mm.evaluation.metrics.mesh_metric import MeshMetric
from hulk_mm.models import Hulk, convert_official_state_dict, dropped_official_keys
from hulk_mm.models.body_model import H36M_J17_TO_J14, BodyModel, load_body_model, smpl_body_model
from hulk_mm.models.detokenizers.mesh import weak_perspective
from hulk_mm.models.losses.mesh import edge_lengths
from hulk_mm.models.tasks.mesh import MeshPathway, template_cells
from tests.models.official_fixture import official_layout_state_dict

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
FIXTURE = osp.join(REPO, 'tests', 'data', 'official', 'mesh')
SMPL_PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)
FIELDS = ('gt_joints3d', 'gt_vertices', 'gt_joints2d', 'joints2d_visibility', 'has_joints3d', 'has_vertices')

init_default_scope('hulk_mm')
pytestmark = pytest.mark.usefixtures('one_thread')


# ----------------------------------------------------------------------------------------------------------------
# A fake SMPL of the official shapes (6890 / 1723 / 431 vertices), seeded: the SMPL model file and the
# GraphCMR / METRO / FastMETRO files in their official formats. The official-fidelity fixture was made from it.
# ----------------------------------------------------------------------------------------------------------------
def _pick(rng, n, k, size):
    """(n, k) distinct random indices in [0, size) per row (sorted draws shifted apart)."""
    return np.sort(rng.integers(0, size - k + 1, (n, k)), axis=1) + np.arange(k)


def _sparse_rows(rng, n, size, k):
    """(n, size) csr matrix with k random non-zeros per row, positive weights summing to 1."""
    cols = _pick(rng, n, k, size)
    return scipy.sparse.csr_matrix((rng.dirichlet(np.ones(k), n).ravel(), cols.ravel(), np.arange(n + 1) * k),
                                   shape=(n, size))


def _selection(rng, n, size):
    idx = np.sort(rng.choice(size, n, replace=False))
    return scipy.sparse.csr_matrix((np.ones(n), idx, np.arange(n + 1)), shape=(n, size)), idx


def _adjacency(rng, n, k):
    """Symmetric random adjacency with self-loops, (n, n) csr of 0/1."""
    cols = _pick(rng, n, k, n)
    a = scipy.sparse.csr_matrix((np.ones(n * k), cols.ravel(), np.arange(n + 1) * k), shape=(n, n))
    a = ((a + a.T + scipy.sparse.eye(n)) > 0).astype(np.float64)
    return a.tocsr()


def fake_smpl(seed: int = 0) -> dict:
    """Arrays of a fake SMPL and its companion files. The template lies in the official PE ranges (x, y within
    +-0.45 m, z within +-0.09 m, so every point relative to a pelvis stays within +-0.9 / +-0.18)."""
    rng = np.random.default_rng(seed)
    v, vi, vc = 6890, 1723, 431
    template = np.concatenate([rng.uniform(-0.45, 0.45, (v, 2)), rng.uniform(-0.09, 0.09, (v, 1))], axis=1)
    d0, fine_to_int = _selection(rng, vi, v)
    d1, int_to_coarse = _selection(rng, vc, vi)
    faces_int = _pick(rng, 3451, 3, vi)
    adj = _adjacency(rng, vc, 3)
    adj_norm = scipy.sparse.diags(1.0 / np.asarray(adj.sum(1)).ravel()) @ adj  # FastMETRO's are row-normalised
    return dict(
        v_template=template, J_regressor=_sparse_rows(rng, 24, v, 4).tocsc(),
        weights=np.eye(24)[rng.integers(0, 24, v)], kintree_table=np.array(
            [[4294967295] + list(SMPL_PARENTS[1:]), list(range(24))], dtype=np.uint32),
        f=_pick(rng, 13776, 3, v).astype(np.uint32), shapedirs=np.zeros((v, 3, 10)),
        posedirs=np.zeros((v, 3, 207), dtype=np.float32),
        h36m=_sparse_rows(rng, 17, v, 6).toarray(), extra=_sparse_rows(rng, 14, v, 4).toarray(),
        U=[_sparse_rows(rng, v, vi, 3).tocsc(), _sparse_rows(rng, vi, vc, 3).tocsc()], D=[d0.tocsc(), d1.tocsc()],
        A=[_adjacency(rng, m, 2).tocsc() for m in (v, vi, vc)],
        F=[_pick(rng, n, 3, m).astype(np.uint32) for n, m in ((13776, v), (3442, vi), (858, vc))],
        faces_int=faces_int.astype(np.int32), edges_int=np.unique(np.sort(
            faces_int[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1), axis=0).astype(np.int32),
        adj=adj_norm.tocoo(), fine_to_int=fine_to_int, int_to_coarse=int_to_coarse)


def write_fake_smpl(smpl: dict, smpl_path: str, data_dir: str):
    """The fake SMPL in the official file formats: the model ``.pkl`` (as ``smplx`` and the official ``SMPL`` read
    it) and, in ``data_dir``, the files of the official ``smpl_modeling/data/`` folder."""
    os.makedirs(data_dir, exist_ok=True)
    with open(smpl_path, 'wb') as f:
        pickle.dump({k: smpl[k] for k in ('v_template', 'J_regressor', 'weights', 'kintree_table', 'f', 'shapedirs',
                                          'posedirs')}, f)
    np.save(osp.join(data_dir, 'J_regressor_h36m_correct.npy'), smpl['h36m'])
    np.save(osp.join(data_dir, 'J_regressor_extra.npy'), smpl['extra'])

    def objects(items):
        out = np.empty(len(items), dtype=object)
        out[:] = items
        return out
    np.savez(osp.join(data_dir, 'mesh_downsampling.npz'), A=objects(smpl['A']), U=objects(smpl['U']),
             D=objects(smpl['D']), F=objects(smpl['F']))
    np.save(osp.join(data_dir, 'smpl_1723_faces.npy'), smpl['faces_int'])
    np.save(osp.join(data_dir, 'smpl_1723_edges.npy'), smpl['edges_int'])
    adj = smpl['adj']
    torch.save(torch.tensor(np.stack([adj.row, adj.col]), dtype=torch.long),
               osp.join(data_dir, 'smpl_431_adjmat_indices.pt'))
    torch.save(torch.tensor(adj.data, dtype=torch.float32), osp.join(data_dir, 'smpl_431_adjmat_values.pt'))
    torch.save(torch.Size(adj.shape), osp.join(data_dir, 'smpl_431_adjmat_size.pt'))


def fixture_inputs(batch: int, smpl: dict, seed: int = 2) -> dict:
    """Seeded inputs of the fidelity fixtures: integer images and ground truth (absolute meshes near the fake
    template, 3-D joints, 2-D joints in crop pixels with visibility, flags mixing present and absent labels)."""
    g = torch.Generator().manual_seed(seed)
    images = (torch.rand(batch, 3, 224, 224, generator=g) * 255).round().to(torch.uint8)
    template = torch.as_tensor(smpl['v_template'], dtype=torch.float32)
    shift = torch.tensor([0.1, -0.2, 4.0])
    vertices = template + 0.02 * torch.randn(batch, len(template), 3, generator=g) + shift
    joints3d = 0.3 * torch.randn(batch, 14, 3, generator=g) + shift
    joints2d = torch.rand(batch, 14, 2, generator=g) * 223
    visibility = torch.randint(0, 3, (batch, 14), generator=g).to(torch.uint8)
    has_joints3d = torch.tensor([1, 0] * batch)[:batch].to(torch.uint8)
    has_vertices = torch.tensor([0, 1] * batch if batch > 1 else [1])[:batch].to(torch.uint8)
    return dict(images=images, gt_vertices=vertices, gt_joints3d=joints3d, gt_joints2d=joints2d,
                joints2d_visibility=visibility, has_joints3d=has_joints3d, has_vertices=has_vertices)


# ----------------------------------------------------------------------------------------------------------------
# Small models for the behaviour tests
# ----------------------------------------------------------------------------------------------------------------
def tiny_assets(seed=0, v=48, vi=24, vc=12, j=14) -> dict:
    """A random body model with the structure of the real ones (nested levels; a sparse up-sampling that keeps the
    intermediate vertices, as GraphCMR's does; adjacency with self-loops), small enough for unit tests."""
    rng = np.random.default_rng(seed)
    fine_to_int = np.sort(rng.choice(v, vi, replace=False))
    up = _sparse_rows(rng, v, vi, 3).toarray()
    up[fine_to_int] = np.eye(vi)
    inter = np.concatenate([rng.uniform(-0.45, 0.45, (vi, 2)), rng.uniform(-0.09, 0.09, (vi, 1))], axis=1)
    return dict(template=(up @ inter).astype(np.float32), downsample_fine_to_intermediate_index=fine_to_int,
                downsample_intermediate_to_coarse_index=np.sort(rng.choice(vi, vc, replace=False)),
                upsample_intermediate_to_fine=up.astype(np.float32),
                joint_regressor=_sparse_rows(rng, j, v, 4).toarray().astype(np.float32),
                adjacency_coarse=_adjacency(rng, vc, 2).toarray().astype(np.uint8),
                faces_intermediate=_pick(rng, 30, 3, vi))


def tiny_hulk(assets=None, img=32, patch=8, width=32, dec_depth=2) -> Hulk:
    return Hulk(
        shared=dict(tokenizers=dict(image=dict(type='ImageTokenizer', img_size=None, patch_size=patch,
                                               embed_dim=width)),
                    encoder=dict(type='ViTEncoder', embed_dim=width, depth=1, num_heads=2),
                    decoder=dict(type='HulkDecoder', embed_dim=width, depth=dec_depth, num_heads=2, ffn_dim=64)),
        tasks=dict(mesh=dict(type='MeshPathway', grid=(img // patch, img // patch), embed_dim=width,
                             body_model=tiny_assets() if assets is None else assets,
                             detokenizer=dict(type='MeshDetokenizer'), loss=dict(type='FastMETROLoss'))),
        data_preprocessor=dict(type='HulkDataPreprocessor',
                               tasks=dict(mesh=dict(type='ImgDataPreprocessor', _scope_='mmengine'))))


def consistent_samples(body: BodyModel, batch=2, size=32, seed=0, has=(1, 1)) -> tuple[list, dict]:
    """Ground truth whose mesh is an up-sampled intermediate mesh, whose joints are regressed from that mesh and
    whose 2-D joints are the exact weak-perspective projection of the root-relative joints with a known camera;
    returns the samples and the de-tokenizer output that matches them exactly (teacher forcing)."""
    g = torch.Generator().manual_seed(seed)
    intermediate = body.downsample(body.template[None])[0] + 0.05 * torch.randn(
        batch, body.num_vertices['intermediate'], 3, generator=g)
    fine = body.upsample(intermediate) + torch.tensor([0, 0, 3.0])
    joints, pelvis = body.joints(fine)
    cam = torch.tensor([[0.8, 0.05, -0.1]]).repeat(batch, 1) + 0.1 * torch.rand(batch, 3, generator=g)
    rel = joints - pelvis[:, None]
    pixels = (weak_perspective(rel, cam) + 1) * size / 2
    samples = [BaseDataElement(gt_joints3d=joints[i], gt_vertices=fine[i], gt_joints2d=pixels[i],
                               joints2d_visibility=torch.full((len(joints[i]),), 2, dtype=torch.uint8),
                               has_joints3d=has[i], has_vertices=has[i]) for i in range(batch)]
    intermediate, coarse = body.downsample(fine - pelvis[:, None])
    out = dict(cam=cam, joints=rel, joints_from_mesh=rel, vertices_coarse=coarse,
               vertices_intermediate=intermediate, vertices_fine=fine - pelvis[:, None])
    return samples, out


def test_shapes_state_dict_and_mask():
    model = tiny_hulk().eval()
    mesh = model.tasks['mesh']
    assert mesh.num_labels == 1 + 14 + 12
    outs = model({'mesh': torch.rand(2, 3, 32, 32) * 255}, mode='tensor')
    assert len(outs) == 2
    shapes = {k: tuple(v.shape) for k, v in outs[-1].items()}
    assert shapes == dict(cam=(2, 3), joints=(2, 14, 3), joints_from_mesh=(2, 14, 3), vertices_coarse=(2, 12, 3),
                          vertices_intermediate=(2, 24, 3), vertices_fine=(2, 48, 3))
    with torch.no_grad():
        final = mesh.infer(model.shared, mesh.example_inputs(model.shared, 3))
    assert {k: tuple(v.shape[1:]) for k, v in final.items()} == {k: v[1:] for k, v in shapes.items()}
    assert final['cam'].shape[0] == 3
    # the body model never enters a weights file; the learned parts and the patch PE do
    keys = {k for k in model.state_dict() if k.startswith('tasks.mesh.')}
    assert keys == {'tasks.mesh.indicator', 'tasks.mesh.pos_embed', 'tasks.mesh.query_embed_patch',
                    'tasks.mesh.detokenizer.output_proj.weight', 'tasks.mesh.detokenizer.output_proj.bias',
                    'tasks.mesh.detokenizer.coarse2intermediate_upsample.weight',
                    'tasks.mesh.detokenizer.coarse2intermediate_upsample.bias'}
    # attention: patches, camera and joints unrestricted; vertex rows see every patch, the camera, the joints and
    # only the adjacent vertices (self-loops included)
    mask, adj, p = mesh.attn_mask, mesh.body_model.adjacency, 16
    assert mask.shape == (p + 27, p + 27) and mask.dtype == torch.bool
    assert mask[:p + 15].all() and mask[p + 15:, :p + 15].all()
    assert torch.equal(mask[p + 15:, p + 15:], adj) and adj.diagonal().all()


def test_template_pe_cells_follow_the_official_arithmetic():
    points = torch.tensor([[0.0, 0.0, 0.0], [-1.0, -1.0, -0.2], [0.999, 0.5, 0.1999], [0.0049, -0.0051, 0.0],
                           [-1.2, 1.3, -0.25]])
    xy, z = template_cells(points)
    assert xy.tolist() == [50 * 100 + 50, 0, 75 * 100 + 99, 49 * 100 + 50, 99 * 100 + 0]
    assert z.tolist() == [50, 0, 99, 50, 0]  # out-of-range points are clamped to the border cell
    model = tiny_hulk()
    mesh = model.tasks['mesh']
    assert mesh.template_pe_xy.shape == (1, 14 + 12, 32) and mesh.template_pe_z.shape == (1, 14 + 12, 32)
    pts = mesh.body_model.template_points()
    joints, pelvis = mesh.body_model.joints(mesh.body_model.template[None])
    torch.testing.assert_close(pts[:14], joints[0] - pelvis)


def test_one_loss_step_reaches_every_parameter():
    model = tiny_hulk().train()
    samples, _ = consistent_samples(model.tasks['mesh'].body_model)
    losses = model({'mesh': torch.rand(2, 3, 32, 32) * 255}, {'mesh': samples}, mode='loss')
    assert set(losses) == {'mesh.loss_3d_joints', 'mesh.loss_vertices', 'mesh.loss_edge_normal',
                           'mesh.loss_2d_joints'}
    model.parse_losses(losses)[0].backward()
    missing = [n for n, p in model.named_parameters()
               if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0)]
    assert not missing, missing  # adapt_pos1d included: the depth PE of the template points


def test_loss_decreases_when_overfitting_a_batch():
    torch.manual_seed(0)
    model = tiny_hulk().train()
    samples, _ = consistent_samples(model.tasks['mesh'].body_model)
    images = torch.rand(2, 3, 32, 32) * 255
    opt = torch.optim.AdamW(model.parameters(), lr=5e-3)
    history = []
    for _ in range(40):
        losses = model({'mesh': images}, {'mesh': samples}, mode='loss')
        loss, _ = model.parse_losses(losses)
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append({k: v.item() for k, v in losses.items()})
    total = [sum(h.values()) for h in history]
    assert total[-1] < 0.6 * total[0], total
    assert all(history[-1][k] < history[0][k] for k in history[0]), (history[0], history[-1])


def test_losses_vanish_for_the_ground_truth_and_respect_the_flags():
    """Teacher forcing: a de-tokenizer output equal to the ground truth gives zero joint, vertex and 2-D losses
    (the targets are down-sampled, pelvis-relative and normalised as the outputs), leaving only the 1e-4 edge-length
    regulariser; samples without labels contribute nothing."""
    model = tiny_hulk().train()
    mesh = model.tasks['mesh']
    samples, out = consistent_samples(mesh.body_model)
    mesh.detokenizer.forward = lambda tokens, body_model: out
    losses = model({'mesh': torch.rand(2, 3, 32, 32) * 255}, {'mesh': samples}, mode='loss')
    for key in ('loss_3d_joints', 'loss_vertices', 'loss_2d_joints'):
        assert losses[f'mesh.{key}'].abs() < 1e-4, (key, losses)
    expected = 100 * 1e-4 * edge_lengths(out['vertices_intermediate'], mesh.body_model.edges).mean()
    torch.testing.assert_close(losses['mesh.loss_edge_normal'], expected, rtol=1e-4, atol=1e-6)
    # one sample without labels and a wrong prediction for it: the 3-D and vertex terms ignore it
    samples, out = consistent_samples(mesh.body_model, has=(1, 0))
    out = {k: v.clone() for k, v in out.items()}
    for k in ('joints', 'joints_from_mesh', 'vertices_coarse', 'vertices_intermediate', 'vertices_fine'):
        out[k][1] += torch.randn_like(out[k][1])
    mesh.detokenizer.forward = lambda tokens, body_model: out
    losses = model({'mesh': torch.rand(2, 3, 32, 32) * 255}, {'mesh': samples}, mode='loss')
    assert losses['mesh.loss_3d_joints'].abs() < 1e-4 and losses['mesh.loss_vertices'].abs() < 1e-4
    assert losses['mesh.loss_2d_joints'] > 1  # the 2-D term has no per-sample flag (official)


def test_predict_fills_what_mesh_metric_reads():
    model = tiny_hulk().eval()
    mesh = model.tasks['mesh']
    samples, out = consistent_samples(mesh.body_model)
    mesh.detokenizer.forward = lambda tokens, body_model: out
    images = [torch.randint(0, 255, (3, 32, 32), dtype=torch.uint8) for _ in range(2)]
    with torch.no_grad():
        results = model.test_step(dict(inputs=images, data_samples=samples))
    assert all(isinstance(r, BaseDataElement) for r in results)
    r = results[0]
    assert r.pred_joints3d.shape == (14, 3) and r.pred_vertices.shape == (48, 3) and r.pred_cam.shape == (3,)
    assert r.pred_joints2d.shape == (14, 2) and r.pred_joints3d_token.shape == (14, 3)
    torch.testing.assert_close(r.pred_joints2d, samples[0].gt_joints2d, rtol=0, atol=1e-4)  # crop pixels
    metric = MeshMetric(prefix='mesh.synthhuman')
    metric.process({}, [s.to_dict() for s in results])
    scores = metric.evaluate(2)
    assert set(scores) == {'mesh.synthhuman/MPJPE', 'mesh.synthhuman/PA-MPJPE', 'mesh.synthhuman/MPVPE'}
    assert max(scores.values()) < 1e-3  # millimetres: the prediction is the ground truth
    # without ground truth (a plain image): predict still runs
    with torch.no_grad():
        del mesh.detokenizer.forward
        bare = model({'mesh': torch.rand(1, 3, 32, 32) * 255}, {'mesh': [BaseDataElement()]}, mode='predict')
    assert bare[0].pred_vertices.shape == (48, 3) and torch.isfinite(bare[0].pred_vertices).all()


def test_bad_inputs_give_clear_errors():
    model = tiny_hulk().eval()
    with pytest.raises(ValueError, match='fixed 4x4 token grid'):
        model({'mesh': torch.rand(1, 3, 48, 32)}, mode='tensor')
    samples, _ = consistent_samples(model.tasks['mesh'].body_model)
    del samples[1].gt_vertices
    with pytest.raises(KeyError, match="sample 1 lacks 'gt_vertices'"):
        model({'mesh': torch.rand(2, 3, 32, 32)}, {'mesh': samples}, mode='loss')
    with pytest.raises(TypeError, match='BaseDataElement'):
        model({'mesh': torch.rand(1, 3, 32, 32)}, {'mesh': [dict()]}, mode='predict')
    assets = tiny_assets()
    with pytest.raises(KeyError, match='lack adjacency_coarse'):
        load_body_model({k: v for k, v in assets.items() if k != 'adjacency_coarse'})
    with pytest.raises(ValueError, match=r'adjacency_coarse has shape \(11, 11\), expected \(12, 12\)'):
        load_body_model(dict(assets, adjacency_coarse=assets['adjacency_coarse'][:11, :11]))
    with pytest.raises(ValueError, match='faces_intermediate indexes outside'):
        load_body_model(dict(assets, faces_intermediate=assets['faces_intermediate'] + 24))
    with pytest.raises(ValueError, match='expects 1 \\+ 14 \\+ 12 = 27 tokens'):
        model.tasks['mesh'].detokenizer(torch.rand(1, 20, 32), model.tasks['mesh'].body_model)


def test_body_model_operations_and_defaults():
    assets = tiny_assets()
    body = BodyModel(assets)
    x = torch.randn(2, 24, 3)
    torch.testing.assert_close(body.upsample(x), torch.as_tensor(assets['upsample_intermediate_to_fine']) @ x)
    fine = torch.randn(2, 48, 3)
    inter, coarse = body.downsample(fine)
    assert torch.equal(inter, fine[:, assets['downsample_fine_to_intermediate_index']])
    assert torch.equal(coarse, inter[:, assets['downsample_intermediate_to_coarse_index']])
    joints, pelvis = body.joints(fine)
    torch.testing.assert_close(pelvis, joints[:, [2, 3]].mean(1))  # default pelvis: the mid-hip
    edges = load_body_model(assets)['edges_intermediate']
    faces = assets['faces_intermediate']
    assert {tuple(e) for e in edges} == {tuple(sorted(p)) for f in faces for p in ((f[0], f[1]), (f[1], f[2]),
                                                                                  (f[0], f[2]))}


def pack_mesh_sample(info: dict) -> BaseDataElement:
    """A ``HumanMeshDataset`` data info as the mesh pathway reads it (what a ``PackMeshInputs`` transform would
    produce: the dataset's arrays under the names ``MeshMetric`` and ``MeshPathway.loss`` read)."""
    return BaseDataElement(
        metainfo=dict(img_path=info['img_path'], img_id=info['img_id'], crop_size=info['crop_size']),
        gt_joints3d=torch.as_tensor(info['joints3d']), gt_vertices=torch.as_tensor(info['vertices']),
        gt_joints2d=torch.as_tensor(info['joints2d']), joints2d_visibility=torch.as_tensor(info['joints2d_visibility']),
        has_joints3d=int(info['has_joints3d']), has_vertices=int(info['has_vertices']))


def test_synthhuman_mesh_data_meets_the_pathway(tmp_path):
    """SynthHuman's mesh files, body model and camera convention against the pathway: the ground truth fed back as
    the prediction scores zero 3-D and vertex losses and MeshMetric errors, and its weak-perspective projection with
    the stored camera lands within a few pixels of the stored 2-D joints (weak vs true perspective)."""
    from hulk_mm.datasets.mesh_dataset import HumanMeshDataset
    from hulk_mm.datasets.synthetic import generate
    generate(str(tmp_path), num_train=4, num_val=0, seed=0, tasks=['mesh'])
    ds = HumanMeshDataset(data_root=str(tmp_path / 'mesh'), ann_file='train.npz')
    infos = [ds.get_data_info(i) for i in range(min(len(ds), 3))]
    model = tiny_hulk(assets=str(tmp_path / 'mesh' / 'body_model.npz'), img=224, patch=16)
    mesh = model.tasks['mesh']
    samples = [pack_mesh_sample(info) for info in infos]
    fine = torch.stack([s.gt_vertices for s in samples]).float()
    joints, pelvis = mesh.body_model.joints(fine)
    intermediate, coarse = mesh.body_model.downsample(fine - pelvis[:, None])
    rel = joints - pelvis[:, None]
    out = dict(cam=torch.as_tensor(np.stack([i['cam'] for i in infos])), joints=rel, joints_from_mesh=rel,
               vertices_coarse=coarse, vertices_intermediate=intermediate, vertices_fine=fine - pelvis[:, None])
    mesh.detokenizer.forward = lambda tokens, body_model: out
    images = torch.rand(len(samples), 3, 224, 224) * 255
    with torch.no_grad():
        losses = model({'mesh': images}, {'mesh': samples}, mode='loss')
        results = model({'mesh': images}, {'mesh': samples}, mode='predict')
    assert losses['mesh.loss_3d_joints'] < 0.01 and losses['mesh.loss_vertices'] < 1e-3
    pixels = torch.stack([r.pred_joints2d for r in results])
    gt2d = torch.stack([s.gt_joints2d for s in samples])
    assert (pixels - gt2d).norm(dim=-1).mean() < 6  # pixels of the 224 crop
    metric = MeshMetric()
    metric.process({}, [r.to_dict() for r in results])
    assert max(metric.evaluate(len(results)).values()) < 0.01  # millimetres


# ----------------------------------------------------------------------------------------------------------------
# SMPL assets: the converter on a fake SMPL in the official file formats
# ----------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope='module')
def smpl_files(tmp_path_factory):
    root = tmp_path_factory.mktemp('fake_smpl')
    smpl = fake_smpl(0)
    write_fake_smpl(smpl, str(root / 'SMPL_NEUTRAL.pkl'), str(root / 'data'))
    return smpl, str(root / 'SMPL_NEUTRAL.pkl'), str(root / 'data')


@pytest.fixture(scope='module')
def smpl_assets(smpl_files):
    _, smpl_path, data_dir = smpl_files
    return smpl_body_model(smpl_path, data_dir)


def test_smpl_converter_builds_the_official_assets(smpl_files, smpl_assets, tmp_path):
    smpl, smpl_path, data_dir = smpl_files
    a = smpl_assets
    assert (len(a['template']), len(a['template_intermediate']), len(a['template_coarse'])) == (6890, 1723, 431)
    # template: SMPL with only the global rotation (3.1416, 0, 0) = that rotation about the root joint
    v = smpl['v_template']
    root = smpl['J_regressor'][0].toarray()[0] @ v
    c, s = np.cos(3.1416), np.sin(3.1416)
    rot = np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    np.testing.assert_allclose(a['template'], (v - root) @ rot.T + root, atol=2e-6)
    np.testing.assert_array_equal(a['joint_regressor'], smpl['h36m'][list(H36M_J17_TO_J14)].astype(np.float32))
    np.testing.assert_array_equal(a['pelvis_regressor'], smpl['h36m'][0].astype(np.float32))
    np.testing.assert_array_equal(a['downsample_fine_to_intermediate_index'], smpl['fine_to_int'])
    np.testing.assert_array_equal(a['downsample_intermediate_to_coarse_index'], smpl['int_to_coarse'])
    np.testing.assert_array_equal(a['template_coarse'], a['template'][smpl['fine_to_int']][smpl['int_to_coarse']])
    np.testing.assert_array_equal(a['upsample_intermediate_to_fine'], smpl['U'][0].toarray().astype(np.float32))
    np.testing.assert_array_equal(a['adjacency_coarse'], (smpl['adj'].toarray() != 0).astype(np.uint8))
    np.testing.assert_array_equal(a['faces_intermediate'], smpl['faces_int'])
    np.testing.assert_array_equal(a['edges_intermediate'], smpl['edges_int'])
    # the tool writes the same arrays; the pathway's body model reads them
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'smpl_to_hulk_body_model', osp.join(REPO, 'tools', 'dataset_converters', 'smpl_to_hulk_body_model.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    out = str(tmp_path / 'body_model.npz')
    tool.main(['--smpl', smpl_path, '--data-dir', data_dir, '--out', out])
    with np.load(out) as npz:
        assert all(np.array_equal(npz[k], a[k]) for k in a)
    body = BodyModel(out)
    x = torch.randn(1, 1723, 3)
    torch.testing.assert_close(body.upsample(x), torch.as_tensor(a['upsample_intermediate_to_fine']) @ x,
                               rtol=1e-5, atol=1e-5)
    assert body.upsample_index.shape == (6890, 3)  # 3 non-zeros per row, as GraphCMR's


# ----------------------------------------------------------------------------------------------------------------
# Fidelity to the official SMPL path. The fixture holds the official outputs, template cells and loss terms and the
# official key list; weights, the fake SMPL and the inputs are regenerated from seeds (README in the fixture folder).
# ----------------------------------------------------------------------------------------------------------------
OUTPUTS = ('cam', 'joints', 'joints_from_mesh', 'vertices_coarse', 'vertices_intermediate', 'vertices_fine')
LOSSES = ('loss_3d_joints', 'loss_vertices', 'loss_edge_normal', 'loss_2d_joints')
DEAD = (r'adapter_sparse_labeling\.', r'backbone_module\.global_tokens$', r'neck_label\.', r'proj_rgb\.',
        r'decoder_module\.predictor\.(query_embed_label|level_embed\.|class_embed\.|mask_embed\.)',
        r'proj_sparse_labeling\.(class_proj|patch_proj|translate_weight|translate_bias|post_mul_norm|text_features)',
        r'proj_sparse_labeling\.loss_fn\.smpl\.')


def fixture_model(meta: dict, assets: dict) -> Hulk:
    (de, depth, heads), (d, dheads, ffn) = meta['enc'], meta['dec']
    model = Hulk(
        shared=dict(tokenizers=dict(image=dict(type='ImageTokenizer', img_size=None, patch_size=16,
                                               embed_dim=de)),
                    encoder=dict(type='ViTEncoder', embed_dim=de, depth=depth, num_heads=heads),
                    decoder=dict(type='HulkDecoder', embed_dim=d, depth=9, num_heads=dheads, ffn_dim=ffn)),
        tasks=dict(mesh=dict(type='MeshPathway', grid=(14, 14), embed_dim=d, body_model=assets,
                             detokenizer=dict(type='MeshDetokenizer'), loss=dict(type='FastMETROLoss'))))
    model.load_state_dict(convert_official_state_dict(
        official_layout_state_dict(meta['keys'], meta['seed']), 'mesh'), strict=True)
    return model


def run_fixture(meta: dict, assets: dict, smpl: dict):
    model = fixture_model(meta, assets).eval()
    inputs = fixture_inputs(meta['batch'], smpl, meta['input_seed'])
    images = inputs['images'].float()
    with torch.no_grad():
        out = model({'mesh': images}, mode='tensor')[-1]
        samples = [BaseDataElement(**{k: inputs[k][i] for k in FIELDS}) for i in range(meta['batch'])]
        losses = model({'mesh': images}, {'mesh': samples}, mode='loss')
    return model, out, losses


def test_converted_official_weights_reproduce_official_mesh_outputs(smpl_files, smpl_assets):
    with open(osp.join(FIXTURE, 'official_keys.json')) as f:
        meta = json.load(f)
    io = torch.load(osp.join(FIXTURE, 'mesh_tiny_io.pth'), weights_only=True)
    assert meta['smpl_seed'] == 0  # the fake SMPL of the smpl_files fixture
    model, out, losses = run_fixture(meta, smpl_assets, smpl_files[0])
    xy, z = template_cells(model.tasks['mesh'].body_model.template_points())
    assert torch.equal(xy, io['template_cells_xy']) and torch.equal(z, io['template_cells_z'])
    for key in OUTPUTS:
        assert out[key].shape == io[key].shape, key
        assert (out[key] - io[key]).abs().max() <= 1e-4 * io[key].abs().max(), key
    for key in LOSSES:
        torch.testing.assert_close(losses[f'mesh.{key}'], io[key], rtol=1e-5, atol=0)


def test_dropped_official_keys_are_the_dead_ones():
    import re
    with open(osp.join(FIXTURE, 'official_keys.json')) as f:
        keys = [k for k, _ in json.load(f)['keys']]
    dead = [k for k in keys if any(re.match(p, k) for p in DEAD)]
    assert dropped_official_keys(dict.fromkeys(keys), 'mesh') == dead
    kept = set(convert_official_state_dict({k: torch.zeros(1) for k in keys}, 'mesh'))
    assert {k for k in kept if k.startswith('tasks.')} == {
        'tasks.mesh.indicator', 'tasks.mesh.pos_embed', 'tasks.mesh.query_embed_patch',
        'tasks.mesh.detokenizer.output_proj.weight', 'tasks.mesh.detokenizer.output_proj.bias',
        'tasks.mesh.detokenizer.coarse2intermediate_upsample.weight',
        'tasks.mesh.detokenizer.coarse2intermediate_upsample.bias'}
    assert MeshPathway.official_rules  # the class the converter found is ours


@pytest.mark.slow
def test_full_size_official_mesh_parity(smpl_files, smpl_assets):
    """ViT-B (768 x 12), decoder 256 x 9 (8 heads, FFN 2048), 224 x 224, 446 label tokens, batch 1."""
    with open(osp.join(FIXTURE, 'official_keys_full.json')) as f:
        meta = json.load(f)
    with open(osp.join(FIXTURE, 'mesh_full_summary.json')) as f:
        summary = json.load(f)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    _, out, losses = run_fixture(meta, smpl_assets, smpl_files[0])
    for key in OUTPUTS:
        ref, flat = summary[key], out[key].flatten()
        assert list(out[key].shape) == ref['shape'], key
        tol = 1e-4 * ref['absmax']
        assert abs(flat.abs().max().item() - ref['absmax']) <= tol, key
        assert (flat[ref['index']] - torch.tensor(ref['values'])).abs().max() <= tol, key
        assert abs(flat.double().sum().item() - ref['sum']) <= tol * flat.numel() ** 0.5, key
    for key in LOSSES:
        assert abs(losses[f'mesh.{key}'].item() - summary[key]) <= 1e-5 * abs(summary[key]), key
