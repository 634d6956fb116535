"""``generate``: render SynthHuman splits and write every requested task's files plus ``manifest.json``.

Determinism: scene ``(split, index)`` is rendered from ``np.random.default_rng([seed, split_id, index])``, so an
image depends only on the seed and its own index, not on the split sizes, the tasks or the number of workers.
Annotation ids are assigned in the main process in image order.
"""
import json
import multiprocessing
import os
import os.path as osp
import shutil
from dataclasses import asdict

import numpy as np
from tqdm import tqdm

from .scene import SceneConfig, generate_scene
from .writers import SPLIT_IDS, WRITERS, encode_jpeg, image_name

GENERATOR_VERSION = 'synthhuman-0.1'
TASKS = ('pose', 'detection', 'parsing', 'attribute', 'caption', 'skeleton_action', 'mesh')
if set(TASKS) != set(WRITERS):  # every canonical task has exactly one writer
    raise ImportError(f'SynthHuman writers {sorted(WRITERS)} do not match the tasks {TASKS}')


def resolve_tasks(tasks=None):
    """Validate task names; ``None`` means every task. Returns them in canonical order."""
    if tasks is None:
        return TASKS
    tasks = list(tasks)
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise ValueError(f'unknown SynthHuman task(s) {", ".join(map(repr, unknown))}; '
                         f'valid names: {", ".join(TASKS)}')
    return tuple(t for t in TASKS if t in tasks)


def scene_rng(seed, split, index):
    """The generator of scene ``index`` (0-based) of ``split``."""
    return np.random.default_rng([seed, SPLIT_IDS[split], index])


_worker = {}


def _init_worker(out_dir, seed, scene_cfg, tasks):
    _worker.update(out_dir=out_dir, seed=seed, scene_cfg=scene_cfg,
                   writers=[WRITERS[t](out_dir, seed) for t in tasks])


def _render_one(job):
    """Render scene ``job = (split, index)``, write its image and per-image task files; return the records."""
    split, index = job
    scene = generate_scene(scene_rng(_worker['seed'], split, index), _worker['scene_cfg'])
    image_id = index + 1
    jpeg = encode_jpeg(scene.image)
    with open(osp.join(_worker['out_dir'], 'images', split, image_name(image_id)), 'wb') as f:
        f.write(jpeg)
    return {w.name: w.image_record(scene, split, image_id, jpeg) for w in _worker['writers']}


def generate(out_dir, num_train, num_val, seed, tasks=None, workers=1, scene_cfg=SceneConfig(), progress=True):
    """Generate SynthHuman into ``out_dir`` (layout: docs/architecture.md, "SynthHuman tree").

    Args:
        out_dir: output folder; the images, the folders of the requested tasks and ``manifest.json`` are
            replaced, anything else in it is left alone.
        num_train, num_val: number of scenes per split.
        seed: int seed; the same seed, counts, tasks and config give byte-identical annotation files.
        tasks: iterable of task names (``TASKS``); None = all of them. Unknown names raise ``ValueError``.
        workers: processes rendering scenes (1 = in this process).
        scene_cfg: ``SceneConfig`` (image size, people per scene, camera ranges).
        progress: show a tqdm progress bar.

    Returns:
        The manifest dict (also written to ``out_dir/manifest.json``).
    """
    tasks = resolve_tasks(tasks)
    counts = {'train': int(num_train), 'val': int(num_val)}
    splits = [s for s in ('train', 'val') if counts[s] > 0]
    manifest_path = osp.join(out_dir, 'manifest.json')
    # The manifest is written last, so a folder without one is never mistaken for a finished dataset.
    if osp.exists(manifest_path):
        os.remove(manifest_path)
    for sub in ('images',) + tasks:
        shutil.rmtree(osp.join(out_dir, sub), ignore_errors=True)
    for split in splits:
        os.makedirs(osp.join(out_dir, 'images', split), exist_ok=True)
    writers = [WRITERS[t](out_dir, seed) for t in tasks]
    for w in writers:
        w.prepare(splits)

    jobs = [(split, i) for split in splits for i in range(counts[split])]
    records = {t: {s: [] for s in splits} for t in tasks}
    init_args = (out_dir, seed, scene_cfg, tasks)
    bar = tqdm(total=len(jobs), desc='SynthHuman', unit='img', disable=not progress)
    if workers > 1:
        with multiprocessing.get_context('fork').Pool(workers, _init_worker, init_args) as pool:
            results = pool.imap(_render_one, jobs, chunksize=8)
            _collect(jobs, results, records, bar)
    else:
        _init_worker(*init_args)
        _collect(jobs, map(_render_one, jobs), records, bar)
    bar.close()

    manifest = dict(
        generator='SynthHuman', version=GENERATOR_VERSION, seed=int(seed), counts=counts, tasks=list(tasks),
        image_size=dict(width=scene_cfg.width, height=scene_cfg.height), scene_config=asdict(scene_cfg),
        files=dict(images={f'images/{s}': dict(images=counts[s]) for s in splits},
                   **{w.name: w.finalize(records[w.name]) for w in writers}))
    text = json.dumps(manifest, indent=2)
    with open(manifest_path, 'w') as f:
        f.write(text)
    return json.loads(text)  # exactly what the file holds (tuples of the config become lists)


def _collect(jobs, results, records, bar):
    for (split, _), per_task in zip(jobs, results):
        for task, rec in per_task.items():
            records[task][split].append(rec)
        bar.update()
