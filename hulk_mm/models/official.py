"""Official Hulk checkpoints -> hulk_mm keys (spec §8).

One official file holds one training task's replica of the whole model; the shared parts (encoder, image
tokenizer, neck, decoder, the semantic projections of a family) are the same in every file. Shared keys map to
``shared.*`` here; each pathway class maps its own tensors (``Pathway.official_rules``) under ``tasks.<task>.``.
Everything else is dead in the released configuration (label tokenizers, ``neck_label``, ``proj_rgb``, the unused
decoder heads ``level_embed`` / ``mask_embed`` / ``class_embed``, ``Norm2d``'s ``ln.*`` aliases, loss buffers) and
is dropped.
"""
from __future__ import annotations

import re

from torch import Tensor

SHARED_RULES: tuple[tuple[str, str], ...] = (  # (official regex, hulk_mm replacement); first match wins
    (r'^backbone_module\.(blocks\.\d+\..*|norm\..*)$', r'shared.encoder.\1'),
    (r'^adapter_rgb\.(proj\.(weight|bias))$', r'shared.tokenizers.image.\1'),
    (r'^adapter_rgb\.pos_embed$', r'shared.tokenizers.image.pos_embed'),
    (r'^adapter_rgb\.type_embed\.weight$', r'shared.tokenizers.image.type_embed'),
    (r'^neck_patch\.mask_map\.0\.(weight|bias)$', r'shared.neck.\1'),
    (r'^decoder_module\.predictor\.transformer_self_attention_layers\.(\d+)\.self_attn\.in_proj_(weight|bias)$',
     r'shared.decoder.layers.\1.attn.qkv.\2'),
    (r'^decoder_module\.predictor\.transformer_self_attention_layers\.(\d+)\.self_attn\.out_proj\.(weight|bias)$',
     r'shared.decoder.layers.\1.attn.proj.\2'),
    (r'^decoder_module\.predictor\.transformer_self_attention_layers\.(\d+)\.norm\.(weight|bias)$',
     r'shared.decoder.layers.\1.norm1.\2'),
    (r'^decoder_module\.predictor\.transformer_ffn_layers\.(\d+)\.linear([12])\.(weight|bias)$',
     r'shared.decoder.layers.\1.ffn.fc\2.\3'),
    (r'^decoder_module\.predictor\.transformer_ffn_layers\.(\d+)\.norm\.(weight|bias)$',
     r'shared.decoder.layers.\1.norm2.\2'),
    (r'^decoder_module\.predictor\.decoder_norm\.(weight|bias)$', r'shared.decoder.norm.\1'),
    (r'^decoder_module\.predictor\.(adapt_pos[12]d\.[02]\.(weight|bias))$', r'shared.decoder.\1'),
    # semantic projections shared by a family: dense (pose + parsing), text (attribute, skeleton, caption)
    (r'^proj_dense_labeling\.(patch_proj|class_proj)\.weight$', r'shared.projections.dense.\1.weight'),
    (r'^proj_text\.(patch_proj|class_proj)\.weight$', r'shared.projections.text.\1.weight'),
)

# Official tensors stored as (1, D) whose hulk_mm counterpart is (1, 1, D).
_RESHAPE_TO_TOKEN = ('shared.tokenizers.image.type_embed', )


def convert_official_state_dict(state_dict: dict[str, Tensor], task: str, name: str | None = None
                                ) -> dict[str, Tensor]:
    """Map one official task checkpoint's ``state_dict`` to :class:`~hulk_mm.models.Hulk` keys.

    Args:
        state_dict: official keys (with or without the leading ``module.``) -> tensors.
        task: canonical task name whose pathway rules apply to the task-specific keys.
        name: the pathway's name in the target model (default: ``task``), e.g. ``'pose_coco'``.

    Returns:
        hulk_mm keys -> tensors. Keys no rule matches are dropped (see :func:`dropped_official_keys`).
    """
    from hulk_mm.models.tasks.base import Pathway
    pathway = Pathway.for_task(task)
    rules = SHARED_RULES + tuple((pat, f'tasks.{name or task}.{rep}') for pat, rep in pathway.official_rules)
    out = {}
    for key, value in state_dict.items():
        key = key[len('module.'):] if key.startswith('module.') else key
        for pattern, replacement in rules:
            new, hit = re.subn(pattern, replacement, key)
            if hit:
                out[new] = value.reshape(1, 1, -1) if new in _RESHAPE_TO_TOKEN else value
                break
    return out


def dropped_official_keys(state_dict: dict[str, Tensor], task: str) -> list[str]:
    """The official keys :func:`convert_official_state_dict` drops for ``task`` (the dead modules)."""
    from hulk_mm.models.tasks.base import Pathway
    rules = SHARED_RULES + Pathway.for_task(task).official_rules
    strip = [k[len('module.'):] if k.startswith('module.') else k for k in state_dict]
    return [k for k in strip if not any(re.match(pattern, k) for pattern, _ in rules)]
