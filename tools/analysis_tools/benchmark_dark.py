"""Decode throughput of the batched DARK / DARK-UDP codecs against mmpose's, in one process.

    python tools/analysis_tools/benchmark_dark.py [--batch 64] [--keypoints 17 133] [--threads 2] [--device cpu]

For each K: the same (B, K, 64, 48) model-like heatmaps (a Gaussian peak of random position, width and height on
a little noise) are decoded by

* argmax only: the batched maximum and its transfer to the host (the floor any heatmap decoder pays);
* mmpose: ``MSRAHeatmap(unbiased=True).decode`` / ``UDPHeatmap.decode`` per sample, as mmpose heads call them
  without ``batch_decode`` (host copy, argmax, ``refine_keypoints_dark`` / ``refine_keypoints_dark_udp``, scaling);
* ours: ``BatchedMSRAHeatmap(unbiased=True)`` / ``BatchedUDPHeatmap`` ``.batch_decode`` on the tensor's device,
  to the same per-sample numpy output.

All decoders run one after the other in each of ``--repeats`` rounds (a shared machine then slows them alike);
medians of the times are printed with the largest keypoint difference to mmpose, and last one ``name: value``
line per ratio, the median of the per-round ratios: ``<codec>_k<K>_speedup_vs_mmpose``, ``..._cost_vs_argmax``
(against hulk_mm's argmax, which on CPU is numpy's on the tensor's memory) and ``..._cost_vs_torch_max`` (against
torch's ``max(dim=-1)``, not vectorised on CPU and several times slower).
"""
from __future__ import annotations

import argparse
import time

import cv2
import numpy as np
import torch

import hulk_mm  # noqa: F401  (applies the stack workarounds)
from hulk_mm.codecs import BatchedMSRAHeatmap, BatchedUDPHeatmap, heatmap_argmax


def parse_args():
    parser = argparse.ArgumentParser(description='DARK / DARK-UDP decode speed: ours vs mmpose')
    parser.add_argument('--batch', type=int, default=64)
    parser.add_argument('--keypoints', type=int, nargs='+', default=[17, 133])
    parser.add_argument('--heatmap-size', type=int, nargs=2, default=[48, 64], metavar=('W', 'H'))
    parser.add_argument('--kernel', type=int, default=11, help='blur kernel size')
    parser.add_argument('--threads', type=int, default=2, help='torch CPU threads')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--repeats', type=int, default=20, help='interleaved timing rounds')
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args()


def model_like_heatmaps(batch: int, keypoints: int, size: tuple[int, int], seed: int) -> np.ndarray:
    """(B, K, H, W) float32: one Gaussian (sigma 1.5-3, height 0.2-1) at a random position plus noise in [0, 0.02)."""
    rng = np.random.default_rng(seed)
    w, h = size
    shape = (batch, keypoints, 1, 1)
    cx, cy = rng.uniform(0, w - 1, shape), rng.uniform(0, h - 1, shape)
    sigma, height = rng.uniform(1.5, 3, shape), rng.uniform(0.2, 1, shape)
    x, y = np.arange(w), np.arange(h)[:, None]
    maps = height * np.exp(-((x - cx)**2 + (y - cy)**2) / (2 * sigma**2))
    return (maps + rng.uniform(0, 0.02, maps.shape)).astype(np.float32)


def interleaved_ms(fns: dict, repeats: int, device: torch.device) -> dict[str, np.ndarray]:
    """Per-round times (ms) of every function, run one after the other in each round, so that a busy machine slows
    all of them alike and per-round ratios stay meaningful."""
    def sync():
        if device.type == 'cuda':
            torch.cuda.synchronize(device)

    for fn in fns.values():  # warm-up
        fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            sync()
            start = time.perf_counter()
            fn()
            sync()
            times[name].append(1e3 * (time.perf_counter() - start))
    return {name: np.asarray(t) for name, t in times.items()}


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(0)  # as inside an MMEngine run (env_cfg.mp_cfg.opencv_num_threads=0), where decoding happens
    device = torch.device(args.device)
    size = tuple(args.heatmap_size)
    input_size = (4 * size[0], 4 * size[1])
    print(f'device {device}, torch threads {torch.get_num_threads()}, B={args.batch}, heatmaps {size[1]}x{size[0]}, '
          f'blur kernel {args.kernel}; {args.repeats} interleaved rounds, medians')
    ratios = {}
    for k in args.keypoints:
        maps = model_like_heatmaps(args.batch, k, size, args.seed)
        heatmaps = torch.from_numpy(maps).to(device)
        codecs = dict(dark=BatchedMSRAHeatmap(input_size, size, 2, unbiased=True, blur_kernel_size=args.kernel),
                      dark_udp=BatchedUDPHeatmap(input_size, size, sigma=2, blur_kernel_size=args.kernel))
        fns = {'argmax': lambda: [t.cpu() for t in heatmap_argmax(heatmaps)],
               'torch_max': lambda: [t.cpu() for t in heatmaps.flatten(2).max(dim=-1)]}
        for name, ours in codecs.items():
            reference = super(type(ours), ours)  # mmpose's own decode on the same codec object
            fns[name] = lambda ours=ours: ours.batch_decode(heatmaps)
            fns[f'{name}_mmpose'] = lambda ref=reference: [ref.decode(m) for m in heatmaps.cpu().numpy()]
        times = interleaved_ms(fns, args.repeats, device)
        med = {name: float(np.median(t)) for name, t in times.items()}
        print(f'\nK={k}: argmax only {med["argmax"]:7.2f} ms (hulk_mm.codecs.heatmap_argmax; torch .max(-1): '
              f'{med["torch_max"]:.2f} ms)')
        for name, ours in codecs.items():
            reference = super(type(ours), ours)
            diff = np.abs(np.stack(ours.batch_decode(heatmaps)[0]) - np.stack([reference.decode(m)[0] for m in maps]))
            print(f'  {name:8s} mmpose {med[name + "_mmpose"]:8.2f} ms   ours {med[name]:6.2f} ms   '
                  f'max |ours - mmpose| {diff.max():.1e} input px')
            ratios[f'{name}_k{k}_speedup_vs_mmpose'] = float(np.median(times[name + '_mmpose'] / times[name]))
            ratios[f'{name}_k{k}_cost_vs_argmax'] = float(np.median(times[name] / times['argmax']))
            ratios[f'{name}_k{k}_cost_vs_torch_max'] = float(np.median(times[name] / times['torch_max']))
    print()
    for name, value in ratios.items():
        print(f'{name}: {value:.2f}')


if __name__ == '__main__':
    main()
