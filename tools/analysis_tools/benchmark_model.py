"""CPU (or GPU) test-time forward time of each Hulk task, and its ratio to a GEMM-only lower bound.

    python tools/analysis_tools/benchmark_model.py configs/hulk/vitb.py [--tasks ...] [--crop-batch 8]
        [--det-batch 1] [--repeats 1] [--device cpu] [--threads N]

For every task (default: its first pathway; pathways of one task have the same geometry) or the pathways named by
``--tasks``: the time of ``infer`` on ``example_inputs`` (crop tasks at ``--crop-batch``, detection at
``--det-batch``; the median over the run that records the products and ``--repeats`` more), and the time of the
same matrix products alone: every linear / ``mm`` / ``addmm`` / ``bmm`` / convolution the forward dispatches, and
each attention's two products (QK^T and attention x V) as one unmasked fused ``scaled_dot_product_attention`` call
of the same shapes (the fastest way to compute them: as two ``bmm`` calls they materialise the N x N scores and
take longer than the whole model), replayed on preallocated random tensors of the recorded shapes. ``ratio = GEMM-only time / forward time`` says how close the model is to its arithmetic (1.0 = nothing but
the GEMMs; the goal is >= 0.85). The last lines are ``name: value`` pairs, one per task.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.registry import init_default_scope
from torch.utils._python_dispatch import TorchDispatchMode

from hulk_mm.registry import MODELS
from hulk_mm.utils.analysis import as_tuple, with_stand_in_assets

aten = torch.ops.aten
# What the Python dispatcher shows depends on the mode: composite ops (linear, conv2d, SDPA) arrive whole under
# inference_mode and decomposed otherwise, so both levels are listed.
GEMMS = {aten.mm.default, aten.addmm.default, aten.bmm.default, aten.baddbmm.default, aten.matmul.default,
         aten.linear.default, aten.convolution.default, aten.conv2d.default, aten.conv_transpose2d.input}
ATTENTION = {aten.scaled_dot_product_attention.default, aten._scaled_dot_product_flash_attention_for_cpu.default,
             aten._scaled_dot_product_efficient_attention.default, aten._scaled_dot_product_flash_attention.default,
             aten._scaled_dot_product_cudnn_attention.default}


class RecordGemms(TorchDispatchMode):
    """Records (replay function, argument shapes) of every GEMM-like call dispatched inside the context."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in GEMMS:
            self.calls.append((func, [('tensor', a.shape, a.stride()) if torch.is_tensor(a) else a for a in args],
                               a_dtype(args)))
        elif func in ATTENTION:
            q, k, v = args[:3]  # (B, h, N, e), (B, h, S, e), (B, h, S, ev)
            self.calls.append((F.scaled_dot_product_attention,
                               [('tensor', x.shape, x.stride()) for x in (q, k, v)], q.dtype))
        return func(*args, **kwargs)


def a_dtype(args):
    return next(a.dtype for a in args if torch.is_tensor(a))


def replay_inputs(calls, device):
    """Preallocated random operands for every recorded call, with the recorded shapes and strides (a transposed
    view multiplies at another speed than a contiguous tensor); calls of equal operand layouts share them (memory:
    a ViT-B on 4200 tokens would otherwise hold every layer's operands at once)."""
    cache = {}

    def operand(shape, stride, dtype):
        key = (tuple(shape), tuple(stride), dtype)
        if key not in cache:
            size = 1 + sum((n - 1) * s for n, s in zip(shape, stride))  # strides may be 0 (expanded views)
            cache[key] = torch.randn(size, device=device, dtype=dtype).as_strided(shape, stride)
        return cache[key]

    out = []
    for func, shapes, dtype in calls:
        args = [operand(s[1], s[2], dtype) if isinstance(s, tuple) and len(s) == 3 and s[0] == 'tensor' else s
                for s in shapes]
        out.append((func, args))
    return out


def timed(fn, repeats: int, device, times: list | None = None) -> float:
    """Median of ``times`` (seconds already measured) and ``repeats`` timed calls of ``fn``."""
    times = list(times or [])
    for _ in range(repeats):
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _record(recorder: RecordGemms, pathway, shared, inputs: tuple):
    with recorder:
        pathway.infer(shared, *inputs)


def first_pathway_per_task(model) -> list[str]:
    names, seen = [], set()
    for name, pathway in model.tasks.items():
        if pathway.task not in seen:
            names.append(name)
            seen.add(pathway.task)
    return names


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('--tasks', nargs='+', default=None, help='pathway names (default: all)')
    parser.add_argument('--crop-batch', type=int, default=8, help='batch of the crop tasks')
    parser.add_argument('--det-batch', type=int, default=1, help='batch of detection (full images)')
    parser.add_argument('--repeats', type=int, default=1, help='timed runs besides the recording run')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads (default: torch\'s)')
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    init_default_scope('hulk_mm')
    cfg = Config.fromfile(args.config)
    model = MODELS.build(with_stand_in_assets(cfg.model)).to(device).eval()
    names = args.tasks or first_pathway_per_task(model)
    unknown = set(names) - set(model.tasks)
    if unknown:
        parser.error(f'unknown pathway(s) {sorted(unknown)}; {args.config} has {list(model.tasks)}')
    print(f'{args.config} on {device} ({torch.get_num_threads()} threads), fp32, median of {args.repeats + 1} '
          f'forward run(s) and {max(1, args.repeats)} GEMM replay(s)')
    ratios = {}
    for name in names:
        pathway = model.tasks[name]
        batch = args.det_batch if pathway.task == 'detection' else args.crop_batch
        torch.manual_seed(0)
        inputs = tuple(x.to(device) if torch.is_tensor(x) else x
                       for x in as_tuple(pathway.example_inputs(model.shared, batch)))
        with torch.inference_mode():
            recorder = RecordGemms()  # its dispatch hook costs microseconds per op: the run is timed too
            recording = timed(lambda: _record(recorder, pathway, model.shared, inputs), 1, device)
            forward = timed(lambda: pathway.infer(model.shared, *inputs), args.repeats, device, [recording])
            replay = replay_inputs(recorder.calls, device)
            [func(*a) for func, a in replay[:1]]  # first-call set-up of the BLAS library
            gemm = timed(lambda: [func(*a) for func, a in replay], max(1, args.repeats), device)
        ratios[name] = gemm / forward
        shapes = ', '.join(str(tuple(x.shape)) for x in inputs if torch.is_tensor(x))
        print(f'  {name:22s} forward {forward * 1e3:9.1f} ms   GEMM-only {gemm * 1e3:9.1f} ms   '
              f'({len(recorder.calls)} products; inputs {shapes})')
    for name, ratio in ratios.items():
        print(f'{name}_gemm_ratio: {ratio:.3f}')


if __name__ == '__main__':
    main()
