"""tools/analysis_tools/get_flops.py and benchmark_model.py on the tiny Hulk pose config: the counts equal the
analytic numbers of the architecture; the benchmark prints its contract lines (no timing is asserted)."""
from __future__ import annotations

import importlib.util
import os.path as osp
import re

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(REPO, 'configs', 'hulk', 'tiny_pose_synthhuman.py')


def load(name):
    spec = importlib.util.spec_from_file_location(name, osp.join(REPO, 'tools', 'analysis_tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_get_flops_matches_the_analytic_counts(capsys):
    load('get_flops').main([CONFIG])
    out = capsys.readouterr().out
    rows = dict(re.findall(r'^  (\S[\w ]+?)\s+([\d.]+)$', out, flags=re.M))
    # tiny config: encoder width 128, 4 blocks, MLP 512; decoder width 128, 9 layers, FFN 512
    block = 4 * 128 * 128 + 4 * 128 + 2 * 128 * 512 + 512 + 128 + 4 * 128  # attn, MLP, two LayerNorms
    assert abs(float(rows['encoder blocks']) - 4 * block / 1e6) < 1e-3
    layer = 4 * 128 * 128 + 4 * 128 + 2 * 128 * 512 + 512 + 128 + 4 * 128
    assert abs(float(rows['decoder layers']) - 9 * layer / 1e6) < 1e-3
    # MACs of the encoder: 192 tokens; per block 12 * N * C^2 (qkv, proj, MLP) + 2 * N^2 * C (QK^T, AV)
    # + two LayerNorms at 5 per element (FlopAnalyzer's rule); + the final norm
    n, c = 192, 128
    encoder = 4 * (12 * n * c * c + 2 * n * n * c + 2 * 5 * n * c) + 5 * n * c
    gmacs = re.search(r'pose\s+([\d.]+)\s+\(encoder ([\d.]+), decoder ([\d.]+)', out)
    assert gmacs, out
    assert abs(float(gmacs.group(2)) - encoder / 1e9) < 0.001
    # decoder: 384 tokens, 9 layers, width 128, FFN 512: (4 C^2 + 2 C F) N + 2 N^2 C and two LayerNorms per
    # layer; the final norm of the last layer (the trace drops the unused intermediate outputs); the PE MLP
    # adapt_pos2d (two C x C layers over the 384 positions)
    n = 384
    decoder = 9 * ((4 * c * c + 2 * c * 512) * n + 2 * n * n * c + 2 * 5 * n * c) + 5 * n * c + 2 * n * c * c
    assert abs(float(gmacs.group(3)) - decoder / 1e9) < 0.001


def test_benchmark_model_prints_ratio_lines(capsys):
    load('benchmark_model').main([CONFIG, '--crop-batch', '1', '--repeats', '1'])
    out = capsys.readouterr().out
    assert re.search(r'pose\s+forward\s+[\d.]+ ms\s+GEMM-only\s+[\d.]+ ms\s+\((\d+) products', out), out
    products = int(re.search(r'\((\d+) products', out).group(1))
    # encoder 4 x (qkv, proj, fc1, fc2, attention) + patch conv + decoder 9 x (q/k, v, proj, fc1, fc2, attention)
    # + the neck + PE MLP (2) + de-tokenizer (patch_proj, class_proj, 2 deconvs, visibility product)
    assert products >= 4 * 5 + 1 + 9 * 6 + 1 + 2 + 5, out
    assert re.search(r'^pose_gemm_ratio: [\d.]+$', out.strip().splitlines()[-1]), out
