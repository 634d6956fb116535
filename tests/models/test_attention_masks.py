"""Decoder self-attention masks: the official rules on hand-written examples (True = may attend)."""
import pytest
import torch

from hulk_mm.models import attention_masks as am


def _bool(rows):
    return torch.tensor(rows, dtype=torch.bool)


def test_full_mask_is_none():
    assert am.full_mask(3, 2, torch.device('cpu')) is None


def test_patch_diag_label_row():
    expected = _bool([[1, 0, 0, 0, 0],   # patch rows: only themselves
                      [0, 1, 0, 0, 0],
                      [0, 0, 1, 0, 0],
                      [1, 1, 1, 1, 1],   # label rows: everything
                      [1, 1, 1, 1, 1]])
    assert torch.equal(am.patch_diag_label_row_mask(3, 2, 'cpu'), expected)


def test_caption_mask_is_causal_over_words():
    expected = _bool([[1, 0, 0, 0, 0],
                      [0, 1, 0, 0, 0],
                      [1, 1, 1, 0, 0],   # word 0 sees the patches and itself
                      [1, 1, 1, 1, 0],
                      [1, 1, 1, 1, 1]])
    assert torch.equal(am.caption_mask(2, 3, 'cpu'), expected)


def test_caption_mask_hides_padded_words():
    word_padding = _bool([[0, 0, 1],     # sample 0: last word is padding
                          [0, 0, 0]])
    mask = am.caption_mask(2, 3, 'cpu', word_padding)
    assert mask.shape == (2, 1, 5, 5)
    expected0 = _bool([[1, 0, 0, 0, 0],
                       [0, 1, 0, 0, 0],
                       [1, 1, 1, 0, 0],
                       [1, 1, 1, 1, 0],
                       [1, 1, 1, 1, 0]])
    assert torch.equal(mask[0, 0], expected0)
    assert torch.equal(mask[1, 0], am.caption_mask(2, 3, 'cpu'))
    with pytest.raises(ValueError, match='word_padding'):
        am.caption_mask(2, 3, 'cpu', word_padding[:, :2])


def test_padded_patch_diag_label_row():
    patch_padding = _bool([[0, 0, 1],    # image 0: its third patch is padding
                           [0, 0, 0]])
    mask = am.padded_patch_diag_label_row_mask(patch_padding, 2)
    assert mask.shape == (2, 1, 5, 5)
    expected0 = _bool([[1, 0, 0, 0, 0],
                       [0, 1, 0, 0, 0],
                       [0, 0, 1, 0, 0],  # a padded patch row still sees itself (never an empty row)
                       [1, 1, 0, 1, 1],
                       [1, 1, 0, 1, 1]])
    assert torch.equal(mask[0, 0], expected0)
    assert torch.equal(mask[1, 0], am.patch_diag_label_row_mask(3, 2, 'cpu'))
    with pytest.raises(ValueError, match='patch_padding'):
        am.padded_patch_diag_label_row_mask(patch_padding.float(), 2)


def test_mesh_adjacency_mask():
    # P = 2 patches; labels = camera, one joint, three vertices with v0 - v1 adjacent (self-loops included)
    adjacency = torch.tensor([[1., 1., 0.],
                              [1., 1., 0.],
                              [0., 0., 1.]])
    expected = _bool([[1, 1, 1, 1, 1, 1, 1],   # patches, camera and joint: unrestricted
                      [1, 1, 1, 1, 1, 1, 1],
                      [1, 1, 1, 1, 1, 1, 1],
                      [1, 1, 1, 1, 1, 1, 1],
                      [1, 1, 1, 1, 1, 1, 0],   # vertices: all patches, camera and joints, adjacent vertices
                      [1, 1, 1, 1, 1, 1, 0],
                      [1, 1, 1, 1, 0, 0, 1]])
    assert torch.equal(am.mesh_adjacency_mask(2, 5, adjacency), expected)
    with pytest.raises(ValueError, match='adjacency'):
        am.mesh_adjacency_mask(2, 2, adjacency)


@pytest.mark.parametrize('build', [
    lambda dev: am.patch_diag_label_row_mask(3, 2, dev),
    lambda dev: am.caption_mask(2, 3, dev),
    lambda dev: am.caption_mask(2, 3, dev, torch.zeros(2, 3, dtype=torch.bool, device=dev)),
    lambda dev: am.padded_patch_diag_label_row_mask(torch.zeros(2, 3, dtype=torch.bool, device=dev), 2),
    lambda dev: am.mesh_adjacency_mask(2, 5, torch.eye(3, device=dev)),
])
def test_masks_are_bool_and_built_on_the_requested_device(build):
    for device in (torch.device('cpu'), torch.device('meta')):  # 'meta' stands in for an accelerator
        mask = build(device)
        assert mask.dtype == torch.bool and mask.device == device
    assert build(torch.device('cpu')).any(-1).all()  # no query without keys (SDPA would give NaN)


def test_input_independent_masks_are_cached():
    a = am.patch_diag_label_row_mask(4, 3, torch.device('cpu'))
    assert am.patch_diag_label_row_mask(4, 3, 'cpu') is a
    assert am.patch_diag_label_row_mask(4, 2, 'cpu') is not a
    assert am.patch_diag_label_row_mask(4, 3, 'meta') is not a
    assert am.caption_mask(4, 3, 'cpu') is am.caption_mask(4, 3, torch.device('cpu'))
