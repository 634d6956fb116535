"""Parameter counts and per-task multiply-accumulates (GMACs) of a Hulk config's test-time forward.

    python tools/analysis_tools/get_flops.py configs/hulk/vitb.py [--tasks pose_coco detection] [--batch-size 1]

Parameters are counted per part (encoder blocks, tokenizers, neck, decoder layers, PE MLPs, semantic projections,
each pathway's own). MACs come from MMEngine's ``FlopAnalyzer`` (jit trace; one multiply-add counts as one) on each
pathway's ``infer`` with ``example_inputs`` (the release geometry: crops for pose/parsing/attributes/caption/mesh,
the detection pathway's example image, skeleton clips), plus a handle for
``scaled_dot_product_attention`` (QK^T and attention x V), which the analyzer does not know. LayerNorms count 5
per element (the analyzer's rule); activations and additions are not counted. Text tables are seeded
stand-ins (values do not change counts).
"""
from __future__ import annotations

import argparse
import logging

import torch
from mmengine.analysis import FlopAnalyzer
from mmengine.analysis.jit_handles import get_shape
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope

from hulk_mm.registry import MODELS
from hulk_mm.utils.analysis import PathwayInference, as_tuple, with_stand_in_assets


def sdpa_macs(inputs, outputs) -> int:
    """aten::scaled_dot_product_attention(q (B, h, N, e), k (B, h, S, e), v (B, h, S, ev)): N*S*e + N*S*ev per head."""
    q, k, v = (get_shape(x) for x in inputs[:3])
    batch = 1
    for dim in q[:-2]:
        batch *= dim
    return batch * q[-2] * k[-2] * (q[-1] + v[-1])


def count(module) -> int:
    params = module if isinstance(module, (list, tuple)) else list(module.parameters())
    return sum(p.numel() for p in params)


def parameter_table(model) -> list[tuple[str, float]]:
    shared = model.shared
    rows = [('encoder blocks', count(shared.encoder.blocks)), ('encoder final norm', count(shared.encoder.norm))]
    rows += [(f'tokenizer {name}', count(t)) for name, t in shared.tokenizers.items()]
    rows += [('neck', count(shared.neck)), ('decoder layers', count(shared.decoder.layers)),
             ('decoder final norm', count(shared.decoder.norm)),
             ('decoder PE MLPs', count(shared.decoder.adapt_pos2d) + count(shared.decoder.adapt_pos1d))]
    rows += [(f'semantic projection {name}', count(p)) for name, p in shared.projections.items()]
    seen = {id(p) for p in shared.parameters()}
    for name, pathway in model.tasks.items():
        own = [p for p in pathway.parameters() if id(p) not in seen]
        seen.update(id(p) for p in own)
        rows.append((f'pathway {name}', count(own)))
    rows.append(('total', count(model)))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('--tasks', nargs='+', default=None, help='pathway names (default: all)')
    parser.add_argument('--batch-size', type=int, default=1)
    args = parser.parse_args(argv)
    init_default_scope('hulk_mm')
    cfg = Config.fromfile(args.config)
    model = MODELS.build(with_stand_in_assets(cfg.model)).eval()
    names = args.tasks or list(model.tasks)
    unknown = set(names) - set(model.tasks)
    if unknown:
        parser.error(f'unknown pathway(s) {sorted(unknown)}; {args.config} has {list(model.tasks)}')

    print(f'{args.config}: parameters (M)')
    for part, n in parameter_table(model):
        print(f'  {part:34s} {n / 1e6:9.3f}')
    MMLogger.get_current_instance().setLevel(logging.ERROR)  # the analyzer warns about every uncounted op
    print(f'test-time forward, batch {args.batch_size} (GMACs; one multiply-add = 1)')
    for name in names:
        pathway = model.tasks[name]
        torch.manual_seed(0)
        inputs = as_tuple(pathway.example_inputs(model.shared, args.batch_size))
        analyzer = FlopAnalyzer(PathwayInference(model, name), inputs)
        analyzer.set_op_handle('aten::scaled_dot_product_attention', sdpa_macs)
        analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        shapes = ', '.join(str(tuple(x.shape)) for x in inputs if torch.is_tensor(x))
        with torch.no_grad():
            total = analyzer.total()
            encoder = analyzer.by_module().get('model.shared.encoder', 0)
            decoder = analyzer.by_module().get('model.shared.decoder', 0)
        print(f'  {name:22s} {total / 1e9:9.3f}   (encoder {encoder / 1e9:.3f}, decoder {decoder / 1e9:.3f}; '
              f'inputs {shapes})')


if __name__ == '__main__':
    main()
