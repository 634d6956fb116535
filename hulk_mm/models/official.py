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

import torch
from torch import Tensor

SHARED_RULES: tuple[tuple[str, str], ...] = (  # (official regex, hulk_mm replacement); first match wins
    (r'^backbone_module\.(blocks\.\d+\..*|norm\..*)$', r'shared.encoder.\1'),
    (r'^adapter_rgb\.(proj\.(weight|bias))$', r'shared.tokenizers.image.\1'),
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

# Every image task stores its own image-tokenizer position table; each image pathway holds its own
# (Pathway.register_input_table).
IMAGE_TABLE_RULE = (r'^adapter_rgb\.pos_embed$', 'pos_embed')

# Official tensors stored as (1, D) whose hulk_mm counterpart is (1, 1, D).
_RESHAPE_TO_TOKEN = ('shared.tokenizers.image.type_embed', )


def _strip_wrapper(key: str) -> str:
    """Official keys carry the ``module.`` prefix of their DistModule wrapper."""
    return key[len('module.'):] if key.startswith('module.') else key


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
    own = pathway.official_rules + ((IMAGE_TABLE_RULE, ) if pathway.modality == 'image' else ())
    rules = (SHARED_RULES + pathway.official_shared_rules
             + tuple((pat, f'tasks.{name or task}.{rep}') for pat, rep in own))
    out = {}
    for key, value in state_dict.items():
        key = _strip_wrapper(key)
        for pattern, replacement in rules:
            new, hit = re.subn(pattern, replacement, key)
            if hit:
                out[new] = value.reshape(1, 1, -1) if new in _RESHAPE_TO_TOKEN else value
                break
    return out


def dropped_official_keys(state_dict: dict[str, Tensor], task: str) -> list[str]:
    """The official keys :func:`convert_official_state_dict` drops for ``task`` (the dead modules)."""
    from hulk_mm.models.tasks.base import Pathway
    pathway = Pathway.for_task(task)
    rules = SHARED_RULES + pathway.official_shared_rules + pathway.official_rules + (IMAGE_TABLE_RULE, )
    strip = [_strip_wrapper(k) for k in state_dict]
    return [k for k in strip if not any(re.match(pattern, k) for pattern, _ in rules)]


# Official training-task index (``ckpt_task{T}_iter_newest.pth.tar``, the `tasks:` order of Hulk_vit-B.yaml) ->
# (task, pathway name in configs/hulk/vitb.py). These are the tasks ``batch_eval.sh`` evaluates.
RELEASE_PATHWAYS: dict[int, tuple[str, str]] = {
    0: ('skeleton_action', 'skeleton_action'),  # NTU60/NTU120/FineGym skeletons
    2: ('mesh', 'mesh'),                        # 3DPW, H3.6M, ...
    4: ('detection', 'detection'),              # CrowdHuman + 5 pedestrian sets
    5: ('attribute', 'attribute'),              # RAPv2, PA-100k, Parse27k, Market, HARDHC
    7: ('caption', 'caption'),                  # CUHK-PEDES, ...
    8: ('pose', 'pose_coco'),
    9: ('pose', 'pose_aic'),
    17: ('parsing', 'parsing_lip'),
    18: ('parsing', 'parsing_cihp'),
    19: ('parsing', 'parsing_h36m'),
}


class OfficialCheckpointMismatch(ValueError):
    """Two official task files disagree on a tensor the official recipe shares between them."""


def merge_official_state_dicts(state_dicts: dict[int, dict[str, Tensor]],
                               pathways: dict[int, tuple[str, str]] | None = None) -> dict[str, Tensor]:
    """Convert several official task files into one hulk_mm state dict.

    Every tensor that more than one file maps to the same hulk_mm key (the shared encoder, tokenizer, neck, decoder,
    semantic projections) must be bit-identical across the files: the official recipe all-reduces their gradients,
    so a difference means a file from another run or a mis-read sharing rule.

    Args:
        state_dicts: official task index -> that file's ``state_dict``.
        pathways: task index -> (task, pathway name); default :data:`RELEASE_PATHWAYS`.

    Raises:
        KeyError: a task index without a pathway.
        OfficialCheckpointMismatch: a shared tensor differs; the message names the key, the two task indices and
            the largest difference.
    """
    pathways = RELEASE_PATHWAYS if pathways is None else pathways
    merged: dict[str, Tensor] = {}
    origin: dict[str, int] = {}
    for index in sorted(state_dicts):
        if index not in pathways:
            raise KeyError(f'official task {index} has no hulk_mm pathway; known: {sorted(pathways)}')
        task, name = pathways[index]
        _check_twins(state_dicts[index], task, index)
        for key, value in convert_official_state_dict(state_dicts[index], task, name).items():
            if key not in merged:
                merged[key], origin[key] = value, index
                continue
            if merged[key].shape != value.shape or not torch.equal(merged[key], value):
                diff = ('shapes ' + f'{tuple(merged[key].shape)} vs {tuple(value.shape)}'
                        if merged[key].shape != value.shape else
                        f'max |d| {(merged[key].float() - value.float()).abs().max().item():.3e}')
                raise OfficialCheckpointMismatch(
                    f'{key} differs between official task {origin[key]} and task {index} ({diff}); the official '
                    f'recipe shares it, so these files do not come from one training run')
    _check_group_shared(merged, {index: pathways[index] for index in state_dicts})
    return merged


def _check_twins(state_dict: dict[str, Tensor], task: str, index: int):
    """Official keys of one file that store the same tensor twice (``Pathway.official_twins``) must agree."""
    from hulk_mm.models.tasks.base import Pathway
    strip = {_strip_wrapper(k): v for k, v in state_dict.items()}
    for dropped, kept in Pathway.for_task(task).official_twins:
        if dropped in strip and kept in strip:
            a, b = strip[dropped], strip[kept]
            if a.numel() != b.numel() or not torch.equal(a.reshape(b.shape), b):
                raise OfficialCheckpointMismatch(f'official task {index}: {dropped} and {kept} should hold the same '
                                                 f'table but differ')


def _check_group_shared(merged: dict[str, Tensor], pathways: dict[int, tuple[str, str]]):
    """Pathways of one task share their ``group_shared`` tensors (e.g. the modality indicator): their files must
    agree on them too."""
    from hulk_mm.models.tasks.base import Pathway
    first: dict[str, tuple[int, str]] = {}
    for index, (task, name) in sorted(pathways.items()):
        if task not in first:
            first[task] = (index, name)
            continue
        owner_index, owner = first[task]
        for attr in Pathway.for_task(task).group_shared:
            prefix = f'tasks.{name}.{attr}'
            for key in [k for k in merged if k == prefix or k.startswith(prefix + '.')]:
                ref = merged.get(f'tasks.{owner}.{key[len(f"tasks.{name}."):]}')
                if ref is not None and (ref.shape != merged[key].shape or not torch.equal(ref, merged[key])):
                    raise OfficialCheckpointMismatch(
                        f'{key} differs from tasks.{owner}.{key[len(f"tasks.{name}."):]} (official tasks {index} '
                        f'and {owner_index}); the official recipe shares `{attr}` within the {task} group')


# Official modules that are dead in the released configuration (spec §1, §8.2): dropped, never reported.
DEAD_RULES: tuple[str, ...] = (
    r'^adapter_(dense_labeling|text)\.',              # label-side tokenizers (all label tokens are masked)
    r'^adapter_sparse_labeling\.',                    # label side for detection / SMPL (skeleton input: mapped first)
    r'^neck_label\.',                                 # second neck, output never used
    r'^proj_rgb\.',                                   # pixel reconstruction head (zero loss)
    r'^backbone_module\.global_tokens$',              # 1 x 0 x D
    r'^decoder_module\.predictor\.(level_embed|class_embed\.|mask_embed\.)',
    r'\.ln\.(weight|bias)$',                          # Norm2d aliases of the same parameters
    r'^proj_sparse_labeling\.loss_fn\.smpl\.',        # licensed SMPL model buffers: loaded from local assets
    r'^decoder_module\.predictor\.query_embed_label$',  # detection (its label PE comes from query_embed_patch), mesh
    r'^proj_sparse_labeling\.(class_proj|patch_proj|translate_weight|translate_bias|text_features)',  # mesh: unused
    #   class branch (detection maps these keys first)
    r'^decoder_module\.predictor\.mask_token(_buffer)?$',  # caption: unused V x D parameter; twin word table
    r'^proj_sparse_labeling\.post_mul_norm\.',          # detection: scalar affine instead; SMPL: unused branch
)


def unexpected_official_keys(state_dict: dict[str, Tensor], task: str) -> list[str]:
    """Official keys that are neither converted for ``task`` nor known to be dead."""
    from hulk_mm.models.tasks.base import Pathway
    dead = DEAD_RULES + Pathway.for_task(task).official_dead_rules
    return [k for k in dropped_official_keys(state_dict, task) if not any(re.search(p, k) for p in dead)]
