"""RankConsistencyHook: digests, the JSON record, and the error on diverged ranks."""
import json
import types

import pytest
import torch
from mmengine.logging import MMLogger

from hulk_mm.engine import hooks
from hulk_mm.engine.hooks import RankConsistencyHook, tensors_digest


def _runner(tmp_path, module):
    return types.SimpleNamespace(model=module, work_dir=str(tmp_path), iter=7,
                                 logger=MMLogger.get_instance('test_hooks'))


def test_digest_depends_on_names_and_values():
    a = [('w', torch.ones(3))]
    assert tensors_digest(a) == tensors_digest([('w', torch.ones(3))])
    assert tensors_digest(a) != tensors_digest([('v', torch.ones(3))])
    assert tensors_digest(a) != tensors_digest([('w', torch.tensor([1., 1., 1.0001]))])


def test_diverged_parameters_raise_and_are_recorded(tmp_path, monkeypatch):
    module = torch.nn.BatchNorm1d(3)
    runner = _runner(tmp_path, module)
    RankConsistencyHook().after_train(runner)  # one rank: consistent
    record = json.loads((tmp_path / 'rank_consistency.json').read_text())
    assert record['iter'] == 7 and len(record['parameters']) == 1

    # two ranks whose parameters differ (simulated gather)
    other = torch.nn.BatchNorm1d(3)
    with torch.no_grad():
        other.weight.add_(1)
    digests = iter([[tensors_digest(module.named_parameters()), tensors_digest(other.named_parameters())],
                    [tensors_digest(module.named_buffers())] * 2])
    monkeypatch.setattr(hooks, 'all_gather_object', lambda obj: next(digests))
    with pytest.raises(RuntimeError, match=r'ranks \[1\] differ from rank 0'):
        RankConsistencyHook().after_train(runner)
