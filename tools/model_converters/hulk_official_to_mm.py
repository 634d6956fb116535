"""Official Hulk checkpoints -> one hulk_mm weights file that loads strictly into ``configs/hulk/vitb.py``.

    python tools/model_converters/hulk_official_to_mm.py SRC_DIR_OR_FILES... OUT.pth [--config configs/hulk/vitb.py]

SRC is a folder holding the official ``ckpt_task{T}_iter_newest.pth.tar`` files (one per training task) or the
files themselves. Each file's ``state_dict`` is converted (``hulk_mm.models.official``): tensors the official
recipe shares across tasks must be bit-identical across the files and are kept once, the dead modules of the
released configuration are dropped, and any key that is neither mapped nor known-dead is reported as unexpected.
Official files are read with ``weights_only=True`` (nothing in them is executed). With ``--config`` the result
is loaded strictly into the config's model (built with stand-in text tables and body model: the check is about
keys and shapes, and the files carry the real tables), which also lists what the files did not provide.
"""
from __future__ import annotations

import argparse
import glob
import os.path as osp
import re
import sys

import torch

from hulk_mm.compat import load_weights
from hulk_mm.models.official import RELEASE_PATHWAYS, merge_official_state_dicts, unexpected_official_keys

FILE_RE = re.compile(r'ckpt_task(\d+)_iter_[^/]*\.pth(\.tar)?$')


def find_task_files(sources: list[str]) -> dict[int, str]:
    """Task index -> file, from folders and/or files named ``ckpt_task{T}_iter_*.pth[.tar]`` (``newest`` preferred)."""
    files = []
    for src in sources:
        if osp.isdir(src):
            files += sorted(glob.glob(osp.join(src, 'ckpt_task*_iter_*.pth*')))
        elif osp.isfile(src):
            files.append(src)
        else:
            raise FileNotFoundError(f'{src}: no such file or folder')
    by_task: dict[int, str] = {}
    for path in files:
        match = FILE_RE.search(osp.basename(path))
        if not match:
            raise ValueError(f'{path}: not an official task checkpoint name (ckpt_task<T>_iter_<N|newest>.pth.tar)')
        index = int(match.group(1))
        if index not in by_task or 'newest' in osp.basename(path):
            by_task[index] = path
    if not by_task:
        raise FileNotFoundError(f'no ckpt_task*_iter_*.pth[.tar] files in {sources}')
    return by_task


def read_state_dict(path: str) -> dict[str, torch.Tensor]:
    ckpt = load_weights(path, map_location='cpu')
    state_dict = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise ValueError(f'{path}: expected a dict with a `state_dict` of tensors (an official Hulk task file)')
    return state_dict


def convert(sources: list[str], out_file: str, config: str | None = None) -> dict[str, torch.Tensor]:
    files = find_task_files(sources)
    unknown = sorted(set(files) - set(RELEASE_PATHWAYS))
    if unknown:
        print(f'skipping official tasks without an evaluated hulk_mm pathway: {unknown}')
        files = {t: f for t, f in files.items() if t in RELEASE_PATHWAYS}
    state_dicts = {}
    for index, path in sorted(files.items()):
        state_dicts[index] = read_state_dict(path)
        task, name = RELEASE_PATHWAYS[index]
        surprise = unexpected_official_keys(state_dicts[index], task)
        print(f'task {index:2d} -> {name:16s} {osp.basename(path)}: {len(state_dicts[index])} keys'
              + (f'; UNEXPECTED (neither mapped nor known-dead): {surprise}' if surprise else ''))
    merged = merge_official_state_dicts(state_dicts)
    print(f'{len(merged)} hulk_mm tensors, {sum(v.numel() for v in merged.values()) / 1e6:.2f} M values')
    if config:
        from mmengine.config import Config
        from mmengine.registry import init_default_scope

        from hulk_mm.registry import MODELS
        from hulk_mm.utils.analysis import with_stand_in_assets
        init_default_scope('hulk_mm')
        cfg = Config.fromfile(config)
        model = MODELS.build(with_stand_in_assets(cfg.model))
        names = set(model.tasks)
        wanted = {name for _, name in (RELEASE_PATHWAYS[i] for i in files)}
        if names != wanted:  # a strict load needs every pathway's file
            raise ValueError(f'{config} has pathways {sorted(names)}, the files give {sorted(wanted)}: missing '
                             f'{sorted(names - wanted)}, extra {sorted(wanted - names)}')
        model.load_state_dict(merged, strict=True)
        print(f'loaded strictly into {config}')
    torch.save({'state_dict': merged, 'meta': {'source': 'official Hulk',
                                              'tasks': {str(i): RELEASE_PATHWAYS[i][1] for i in files}}}, out_file)
    print(f'wrote {out_file}')
    return merged


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('sources', nargs='+', help='folder(s) with ckpt_task{T}_iter_newest.pth.tar, or the files')
    parser.add_argument('out_file', help='hulk_mm weights file to write')
    parser.add_argument('--config', default=None, help='check a strict load into this config (configs/hulk/vitb.py)')
    args = parser.parse_args(argv)
    try:
        convert(args.sources, args.out_file, args.config)
    except (FileNotFoundError, ValueError, KeyError) as err:
        sys.exit(f'error: {err}')


if __name__ == '__main__':
    main()
