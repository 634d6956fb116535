"""Decode throughput of the batched DARK / DARK-UDP codecs against mmpose's, in one process.

    python tools/analysis_tools/benchmark_dark.py [--batch 64] [--keypoints 17 133] [--threads 2] [--device cpu]

For each K: the same (B, K, 64, 48) model-like heatmaps (a Gaussian peak of random position, width and height on
a little noise) are decoded by

* argmax only: the batched maximum and its transfer to the host (the floor any heatmap decoder pays);
* mmpose: ``MSRAHeatmap(unbiased=True).decode`` / ``UDPHeatmap.decode`` per sample, as mmpose heads call them
  without ``batch_decode`` (host copy, argmax, ``refine_keypoints_dark`` / ``refine_keypoints_dark_udp``, scaling);
* ours: ``BatchedMSRAHeatmap(unbiased=True)`` / ``BatchedUDPHeatmap`` ``.batch_decode`` on the tensor's device,
  to the same per-sample numpy output.

Medians over ``--repeats`` timed runs after warm-up (mmpose: a fifth of them), with the largest keypoint difference
to mmpose; last, one ``name: value`` line per ratio (``<codec>_k<K>_speedup_vs_mmpose``, ``..._cost_vs_argmax``).
On CPU the argmax is numpy's on the tensor's memory: torch's CPU ``max(dim)`` is not vectorised and is ~40x
slower (printed for reference).
"""
from __future__ import annotations

import argparse
import time

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
    parser.add_argument('--repeats', type=int, default=30)
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


def median_ms(fn, repeats: int, device: torch.device, warmup: int = 3) -> float:
    def sync():
        if device.type == 'cuda':
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    size = tuple(args.heatmap_size)
    input_size = (4 * size[0], 4 * size[1])
    print(f'device {device}, torch threads {torch.get_num_threads()}, B={args.batch}, heatmaps {size[1]}x{size[0]}, '
          f'blur kernel {args.kernel}, median of {args.repeats} runs (mmpose: {max(3, args.repeats // 5)})')
    ratios = {}
    for k in args.keypoints:
        maps = model_like_heatmaps(args.batch, k, size, args.seed)
        heatmaps = torch.from_numpy(maps).to(device)
        argmax_ms = median_ms(lambda: [t.cpu() for t in heatmap_argmax(heatmaps)], args.repeats, device)
        torch_max_ms = median_ms(lambda: [t.cpu() for t in heatmaps.flatten(2).max(dim=-1)], args.repeats, device)
        print(f'\nK={k}: argmax only {argmax_ms:7.2f} ms (hulk_mm.codecs.heatmap_argmax; torch .max(-1): '
              f'{torch_max_ms:.2f} ms)')
        for name, ours in (('dark', BatchedMSRAHeatmap(input_size, size, 2, unbiased=True,
                                                        blur_kernel_size=args.kernel)),
                           ('dark_udp', BatchedUDPHeatmap(input_size, size, sigma=2, blur_kernel_size=args.kernel))):
            reference = super(type(ours), ours)  # mmpose's own decode on the same codec object
            ours_ms = median_ms(lambda: ours.batch_decode(heatmaps), args.repeats, device)
            ref_ms = median_ms(lambda: [reference.decode(m) for m in heatmaps.cpu().numpy()],
                               max(3, args.repeats // 5), device, warmup=1)
            ours_kpts = np.stack(ours.batch_decode(heatmaps)[0])
            ref_kpts = np.stack([reference.decode(m)[0] for m in maps])
            diff = np.abs(ours_kpts - ref_kpts).max()
            print(f'  {name:8s} mmpose {ref_ms:8.2f} ms   ours {ours_ms:6.2f} ms   max |ours - mmpose| {diff:.1e} '
                  f'input px')
            ratios[f'{name}_k{k}_speedup_vs_mmpose'] = ref_ms / ours_ms
            ratios[f'{name}_k{k}_cost_vs_argmax'] = ours_ms / argmax_ms
    print()
    for name, value in ratios.items():
        print(f'{name}: {value:.2f}')


if __name__ == '__main__':
    main()
