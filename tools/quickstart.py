"""The main job (``make quickstart``): SynthHuman -> train -> publish -> evaluate, with one table at the end.

1. generates SynthHuman into ``data/synthhuman/`` unless its ``manifest.json`` already matches the requested
   seed, counts and generator version;
2. trains the config (resuming from the latest checkpoint of an interrupted run);
3. publishes the final checkpoint as ``<work_dir>/weights.pth`` (weights-only loadable);
4. evaluates it with the upstream metrics, writes ``<work_dir>/metrics.json`` and prints a table.
"""
from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import time

from mmengine.config import Config

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEFAULT_CONFIG = osp.join(REPO, 'configs', 'vitpose', 'vitpose-tiny_synthhuman-128x96.py')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--config', default=DEFAULT_CONFIG)
    parser.add_argument('--data-root', default=osp.join(REPO, 'data', 'synthhuman'))
    parser.add_argument('--work-dir', help='default: work_dirs/<config name> in the repository')
    parser.add_argument('--num-train', type=int, default=1000)
    parser.add_argument('--num-val', type=int, default=200)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--tasks', nargs='+', default=['pose'])
    parser.add_argument('--cfg-options', nargs='+', default=[], help='passed on to tools/train.py and tools/test.py')
    return parser.parse_args(argv)


def ensure_synthhuman(root: str, num_train: int, num_val: int, seed: int, tasks: list[str]) -> dict:
    """Generate SynthHuman into ``root`` unless the manifest there already describes the same request."""
    from hulk_mm.datasets.synthetic import GENERATOR_VERSION, generate
    manifest_file = osp.join(root, 'manifest.json')
    if osp.isfile(manifest_file):
        with open(manifest_file) as f:
            manifest = json.load(f)
        if (manifest.get('version') == GENERATOR_VERSION and manifest.get('seed') == seed
                and manifest.get('counts') == dict(train=num_train, val=num_val)
                and set(tasks) <= set(manifest.get('tasks', []))):
            print(f'[quickstart] SynthHuman in {root} matches (seed {seed}, {num_train}/{num_val}): reused')
            return manifest
    print(f'[quickstart] generating SynthHuman into {root} ({num_train} train / {num_val} val, seed {seed})')
    return generate(root, num_train=num_train, num_val=num_val, seed=seed, tasks=tasks)


def same_run_interrupted(work_dir: str, config: str, options: list[str]) -> bool:
    """Whether ``work_dir`` holds checkpoints of this very run (same config text after the options), so that
    training resumes; after a config change the old checkpoints would not fit, and training starts afresh."""
    import hashlib
    from mmengine.config import DictAction
    cfg = Config.fromfile(config)
    action = DictAction(option_strings=[], dest='options')
    namespace = argparse.Namespace()
    action(None, namespace, options)
    cfg.merge_from_dict(namespace.options)
    digest = hashlib.sha256(cfg.pretty_text.encode()).hexdigest()
    stamp = osp.join(work_dir, 'quickstart_config.sha256')
    same = osp.isfile(stamp) and open(stamp).read() == digest and osp.isfile(osp.join(work_dir, 'last_checkpoint'))
    if not same and osp.isfile(osp.join(work_dir, 'last_checkpoint')):
        print(f'[quickstart] {work_dir} holds checkpoints of another configuration: training starts afresh')
        os.remove(osp.join(work_dir, 'last_checkpoint'))
    os.makedirs(work_dir, exist_ok=True)
    with open(stamp, 'w') as f:
        f.write(digest)
    return same


def print_table(metrics: dict) -> None:
    rows = [(key.split('/')[0], key.split('/', 1)[1] if '/' in key else key, value) for key, value in metrics.items()]
    width = max(len(r[0]) for r in rows) + 2
    print(f'\n{"task.dataset":<{width}}{"metric":<12}{"value":>10}')
    for task, metric, value in sorted(rows):
        print(f'{task:<{width}}{metric:<12}{value:>10.4f}')


def main(argv=None):
    args = parse_args(argv)
    from hulk_mm.engine.launch import test, train
    from hulk_mm.engine.publish import publish_model

    t0 = time.time()
    ensure_synthhuman(args.data_root, args.num_train, args.num_val, args.seed, args.tasks)
    t_data = time.time() - t0

    name = osp.splitext(osp.basename(args.config))[0]
    work_dir = args.work_dir or osp.join(REPO, 'work_dirs', name)
    options = ['--cfg-options', f'data_root={args.data_root}', *args.cfg_options]
    resume = ['--resume'] if same_run_interrupted(work_dir, args.config, options[1:]) else []
    t0 = time.time()
    runner = train([args.config, '--work-dir', work_dir, *resume, *options])
    t_train = time.time() - t0

    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        last = f.read().strip()
    weights = osp.join(work_dir, 'weights.pth')
    sha = publish_model(last, weights)
    print(f'[quickstart] published {last} -> {weights} (sha256 {sha[:8]})')

    t0 = time.time()
    metrics_file = osp.join(work_dir, 'metrics.json')
    metrics = test([args.config, weights, '--work-dir', work_dir, '--metrics-out', metrics_file, *options])
    t_eval = time.time() - t0
    cfg = Config.fromfile(args.config)
    print_table(metrics)
    print(f'\n[quickstart] {cfg.train_cfg.max_iters} iterations (now at {runner.iter}); data {t_data:.0f} s, '
          f'training {t_train:.0f} s, evaluation {t_eval:.0f} s; metrics in {metrics_file}')


if __name__ == '__main__':
    main()
