"""Batched DARK / DARK-UDP codecs (hulk_mm.codecs): equal to mmpose's numpy decoders, sub-pixel accurate, usable
from any mmpose config and head."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from mmengine.registry import DefaultScope
from mmpose.codecs import MSRAHeatmap, UDPHeatmap
from mmpose.codecs.utils.gaussian_heatmap import (generate_udp_gaussian_heatmaps,
                                                  generate_unbiased_gaussian_heatmaps)
from mmpose.registry import KEYPOINT_CODECS

from hulk_mm.codecs.dark import heatmap_argmax, refine_dark, refine_dark_udp, refine_quarter_offset
from hulk_mm.codecs.heatmap import BatchedMSRAHeatmap, BatchedUDPHeatmap

INPUT, HEATMAP = (192, 256), (48, 64)  # (w, h), ViTPose / Hulk
B, K = 6, 17

PAIRS = {  # name -> (mmpose codec, ours)
    'dark': lambda ks: (MSRAHeatmap(INPUT, HEATMAP, 2, unbiased=True, blur_kernel_size=ks),
                        BatchedMSRAHeatmap(INPUT, HEATMAP, 2, unbiased=True, blur_kernel_size=ks)),
    'dark_udp': lambda ks: (UDPHeatmap(INPUT, HEATMAP, sigma=2, blur_kernel_size=ks),
                            BatchedUDPHeatmap(INPUT, HEATMAP, sigma=2, blur_kernel_size=ks)),
    'msra': lambda ks: (MSRAHeatmap(INPUT, HEATMAP, 2), BatchedMSRAHeatmap(INPUT, HEATMAP, 2)),
}


def gaussians(centers: np.ndarray, sigma, amplitude, size=HEATMAP) -> np.ndarray:
    """(..., P, 2) centres (x, y) in heatmap pixels -> (..., H, W) maps, the max over P full-grid Gaussians."""
    w, h = size
    x, y = np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32)[:, None]
    cx, cy = centers[..., 0, None, None], centers[..., 1, None, None]
    sigma, amplitude = np.broadcast_to(sigma, centers.shape[:-1]), np.broadcast_to(amplitude, centers.shape[:-1])
    g = amplitude[..., None, None] * np.exp(-((x - cx)**2 + (y - cy)**2) / (2 * sigma[..., None, None]**2))
    return g.max(axis=-3).astype(np.float32)


def heatmap_cases(seed: int = 0) -> dict[str, np.ndarray]:
    """(B, K, H, W) float32 heatmaps of each kind the decoders must agree on."""
    rng = np.random.default_rng(seed)
    w, h = HEATMAP
    shape = (B, K, 1)

    def anywhere(n=1):
        return np.stack([rng.uniform(0, w - 1, shape[:2] + (n,)), rng.uniform(0, h - 1, shape[:2] + (n,))], -1)

    on_edge = anywhere()
    side = rng.integers(0, 4, shape[:2])  # pin one coordinate to 0, 0.6, W - 1.6 or W - 1 (resp. H)
    near = rng.choice([0.0, 0.6, 1.0, 1.4], size=shape[:2])
    on_edge[..., 0, 0] = np.where(side == 0, near, np.where(side == 1, w - 1 - near, on_edge[..., 0, 0]))
    on_edge[..., 0, 1] = np.where(side == 2, near, np.where(side == 3, h - 1 - near, on_edge[..., 0, 1]))
    noise = rng.uniform(0, 0.02, (B, K, h, w)).astype(np.float32)
    return {
        # model-like: one peak anywhere, random width and height, a little noise
        'random': gaussians(anywhere(), rng.uniform(1.5, 3, shape), rng.uniform(0.2, 1, shape)) + noise,
        'gaussian': gaussians(anywhere(), 2.0, 1.0),
        'edge_peaks': gaussians(on_edge, 2.0, rng.uniform(0.3, 1, shape)),
        'multiple_peaks': gaussians(anywhere(3), rng.uniform(1.5, 3, (B, K, 3)), rng.uniform(0.2, 1, (B, K, 3))),
        # faint maps: the DARK-UDP log clip at 1e-3 binds around the peak
        'faint': gaussians(anywhere(), 2.0, rng.uniform(1e-4, 3e-3, shape)),
        'flat': np.full((B, K, h, w), 0.3, np.float32),
    }


def mmpose_decode(codec, maps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """mmpose's per-sample numpy decode, as its heads run it. (B, K, H, W) -> (B, K, 2), (B, K)."""
    with np.errstate(invalid='ignore', divide='ignore'):
        decoded = [codec.decode(m.copy()) for m in maps]
    return np.stack([k[0] for k, _ in decoded]), np.stack([s[0] for _, s in decoded])


def our_decode(codec, maps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    keypoints, scores = codec.batch_decode(torch.from_numpy(maps))
    return np.stack(keypoints)[:, 0], np.stack(scores)[:, 0]


@pytest.mark.parametrize('kernel', [11, 17])
@pytest.mark.parametrize('name', ['dark', 'dark_udp', 'msra'])
def test_equal_to_mmpose(name, kernel):
    """Keypoints within 1e-3 px (input pixels, after the codec's scaling) and bit-equal scores on every kind of
    well-defined heatmap."""
    reference, ours = PAIRS[name](kernel)
    errors = {}
    for case, maps in heatmap_cases(kernel).items():
        ref_kpts, ref_scores = mmpose_decode(reference, maps)
        kpts, scores = our_decode(ours, maps)
        assert kpts.shape == ref_kpts.shape == (B, K, 2) and scores.shape == (B, K)
        np.testing.assert_array_equal(scores, ref_scores, err_msg=case)
        errors[case] = float(np.abs(kpts - ref_kpts).max())
    assert max(errors.values()) <= 1e-3, errors


@pytest.mark.parametrize('name', ['dark', 'dark_udp'])
def test_noise_maps_agree_where_the_step_is_meaningful(name):
    """Uniform noise: most Newton steps leave the 1-pixel neighbourhood where the Taylor model holds, and there
    the two float32 implementations differ by their rounding amplified by the Hessian's condition (as much as
    mmpose differs from itself computed in float64). Equal within 1e-3 px where mmpose's step stays within 1 px;
    the median difference of all keypoints within 1e-4 px."""
    reference, ours = PAIRS[name](11)
    maps = np.random.default_rng(1).random((B, K) + HEATMAP[::-1], dtype=np.float32)
    ref_kpts, _ = mmpose_decode(reference, maps)
    kpts, _ = our_decode(ours, maps)
    scale = INPUT[0] / (HEATMAP[0] - 1) if name == 'dark_udp' else INPUT[0] / HEATMAP[0]
    locs = heatmap_argmax(torch.from_numpy(maps))[0].numpy() * scale
    step = np.abs(ref_kpts - locs).max(-1) / scale  # heatmap pixels
    error = np.abs(kpts - ref_kpts).max(-1) / scale
    assert (step <= 1).sum() >= B * K // 10
    assert error[step <= 1].max() <= 1e-3
    assert np.median(error) <= 1e-4


def test_maps_without_a_positive_maximum():
    """Zero and negative maps: score = the maximum, keypoint = mmpose's invalid location (-1, -1) scaled, for both
    codecs. mmpose's DARK gives the same; its DARK-UDP gives NaN (zero maps) or values read from the neighbouring
    map (negative maps), which is not reproduced."""
    rng = np.random.default_rng(2)
    maps = np.zeros((2, K) + HEATMAP[::-1], np.float32)
    maps[1] = -rng.random((K,) + HEATMAP[::-1], dtype=np.float32)
    for name in ('dark', 'dark_udp'):
        reference, ours = PAIRS[name](11)
        ref_kpts, ref_scores = mmpose_decode(reference, maps)
        kpts, scores = our_decode(ours, maps)
        np.testing.assert_array_equal(scores, ref_scores)
        invalid = -np.asarray(INPUT) / (np.asarray(HEATMAP) - (name == 'dark_udp'))
        np.testing.assert_allclose(kpts, np.broadcast_to(invalid, kpts.shape), rtol=1e-6)
        if name == 'dark':
            np.testing.assert_array_equal(kpts, ref_kpts)
        else:
            assert np.isnan(ref_kpts[0]).all()  # the mmpose behaviour not reproduced


@pytest.mark.parametrize('render, refine', [(generate_unbiased_gaussian_heatmaps, refine_dark),
                                            (generate_udp_gaussian_heatmaps, refine_dark_udp)])
def test_subpixel_accuracy(render, refine):
    """A Gaussian (sigma 2) rendered at a random sub-pixel location by the codec's own encoder is recovered within
    0.05 heatmap px by the refinement; the bare argmax is off by >= 0.25 px on average. Locations are at least
    2 sigma from the border: nearer, the zero-padded blur pulls the peak inwards (mmpose's DARK as well; up to
    0.25 px at 2 px from the border, 0.05 px at 3 px)."""
    rng = np.random.default_rng(3)
    w, h = HEATMAP
    n = 300
    truth = np.stack([rng.uniform(4, w - 5, n), rng.uniform(4, h - 5, n)], -1).astype(np.float32)
    maps, _ = render(HEATMAP, truth[None], np.ones((1, n), np.float32), 2.0)
    heatmaps = torch.from_numpy(maps)[None]
    locs, vals = heatmap_argmax(heatmaps)
    refined = refine(heatmaps, locs, vals, 11)[0].numpy()
    assert np.linalg.norm(refined - truth, axis=-1).max() < 0.05
    assert np.linalg.norm(locs[0].numpy() - truth, axis=-1).mean() >= 0.25


def test_scaling_conventions_are_mmpose():
    """Encode then decode a keypoint: MSRA maps heatmap px * input/heatmap both ways; UDP encodes with
    (input - 1)/(heatmap - 1) and decodes with input/(heatmap - 1), as mmpose."""
    keypoints = np.array([[[37.3, 101.8], [150.2, 20.6]]], np.float32)
    visible = np.ones((1, 2), np.float32)
    msra = BatchedMSRAHeatmap(INPUT, HEATMAP, 2, unbiased=True)
    decoded, _ = msra.decode(msra.encode(keypoints, visible)['heatmaps'])
    np.testing.assert_allclose(decoded, keypoints, atol=0.05 * 4)
    udp = BatchedUDPHeatmap(INPUT, HEATMAP, sigma=2)
    decoded, _ = udp.decode(udp.encode(keypoints, visible)['heatmaps'])
    w, h = INPUT
    np.testing.assert_allclose(decoded, keypoints * [w / (w - 1), h / (h - 1)], atol=0.05 * 4)


def test_decode_matches_batch_decode_and_dtypes():
    maps = heatmap_cases()['random']
    codec = BatchedUDPHeatmap(INPUT, HEATMAP, sigma=2)
    kpts, scores = codec.batch_decode(torch.from_numpy(maps))
    assert len(kpts) == len(scores) == B and kpts[0].shape == (1, K, 2) and scores[0].shape == (1, K)
    one_kpts, one_scores = codec.decode(maps[2])
    np.testing.assert_allclose(one_kpts, kpts[2], rtol=0, atol=1e-4)  # batched matmul blocking differs
    np.testing.assert_array_equal(one_scores, scores[2])
    # half-precision heatmaps (AMP) decode to nearly the same keypoints
    half_kpts, _ = codec.batch_decode(torch.from_numpy(maps).half())
    assert np.abs(np.stack(half_kpts) - np.stack(kpts)).max() < 0.5


@pytest.mark.parametrize('size', [(64, 48), (8, 6)])
def test_decoding_never_reads_values_on_the_host(size):
    """The whole tensor pipeline runs on the meta device (no data): no ``.item()``, no data-dependent shapes, no
    host synchronisation until the codec's final transfer; small maps (padded to the blur patch) included."""
    heatmaps = torch.empty((2, K) + size, device='meta')
    locs, vals = heatmap_argmax(heatmaps)
    for keypoints in (refine_dark(heatmaps, locs, vals, 11), refine_dark_udp(heatmaps, locs, vals, 17),
                      refine_quarter_offset(heatmaps, locs)):
        assert keypoints.device.type == 'meta' and keypoints.shape == (2, K, 2)


def test_registered_for_mmpose_configs_and_heads():
    """Built from config under either default scope; mmpose's HeatmapHead decodes the batch through it."""
    cfg = dict(type='BatchedUDPHeatmap', input_size=INPUT, heatmap_size=HEATMAP, sigma=2)
    for scope in ('mmpose', 'hulk_mm'):
        with DefaultScope.overwrite_default_scope(scope):
            assert type(KEYPOINT_CODECS.build(cfg)) is BatchedUDPHeatmap
    from mmpose.models.heads import HeatmapHead
    with DefaultScope.overwrite_default_scope('mmpose'):  # the head builds its default loss in the current scope
        head = HeatmapHead(in_channels=8, out_channels=K, deconv_out_channels=(), deconv_kernel_sizes=(),
                           decoder=dict(type='BatchedMSRAHeatmap', input_size=INPUT, heatmap_size=HEATMAP, sigma=2,
                                        unbiased=True))
    assert head.decoder.support_batch_decoding
    preds = head.predict((torch.rand(3, 8, 64, 48),), batch_data_samples=[None] * 3, test_cfg={})
    assert len(preds) == 3 and preds[0].keypoints.shape == (1, K, 2) and preds[0].keypoint_scores.shape == (1, K)


def test_bad_arguments():
    with pytest.raises(ValueError, match='Gaussian heatmaps only'):
        BatchedUDPHeatmap(INPUT, HEATMAP, heatmap_type='combined')
    with pytest.raises(ValueError, match='at least 5x5'):
        BatchedMSRAHeatmap((12, 16), (3, 4), 2)
    with pytest.raises(ValueError, match='must be odd'):
        BatchedUDPHeatmap(INPUT, HEATMAP, blur_kernel_size=10).decode(np.ones((K,) + HEATMAP[::-1], np.float32))
