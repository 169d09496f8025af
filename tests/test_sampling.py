"""gsmlp.model.sampling: Deformable DETR's sampling on the torch op, and the switch back to transformers'.

The op's own tests against transformers' module (kernels vs the reference on edge cases) live with the
kernels; here: the model swap, its fallbacks, and the whole model on the op against transformers' module.
Where the op is not built, the tests that need it skip naming what is missing.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from transformers.models.deformable_detr.modeling_deformable_detr import MultiScaleDeformableAttention

from gsmlp.errors import NotBuiltError
from gsmlp.model import sampling
from gsmlp.model.sampling import (
    OP_SAMPLING,
    TRANSFORMERS_SAMPLING,
    OpSampling,
    sampling_in_use,
    sampling_owners,
    transformers_sampling,
    use_sampling,
)
from gsmlp.model.wrap import wrap_ffns
from tests.conftest import make_tiny_model
from tests.test_export import gated_tiny, random_inputs
from tests.test_sampling_function import attention_case, transformers_reference

# The stated bound (docs/EXPORT.md, "PyTorch: the torch op"): the op against transformers' module, fp32.
OP_BOUND = 1e-5
# The whole tiny model on the op against it on transformers' module: 4 attentions and the layers after
# them carry the op's summation-order difference into the outputs.
MODEL_BOUND = 1e-4


def _op_or_skip():
    op, missing = sampling._torch_op()
    if op is None:
        pytest.skip(missing)
    return op


def _cores(model: torch.nn.Module) -> list[torch.nn.Module]:
    return [owner.attn for owner in sampling_owners(model)]


def test_transformers_choice_keeps_transformers_module() -> None:
    model = wrap_ffns(make_tiny_model("deformable-detr"))
    cores = _cores(model)
    assert len(cores) == 4 and all(type(core) is MultiScaleDeformableAttention for core in cores)
    assert use_sampling(model, "transformers") == TRANSFORMERS_SAMPLING == sampling_in_use(model)
    assert _cores(model) == cores
    assert use_sampling(make_tiny_model("detr"), "op") == "" == sampling_in_use(make_tiny_model("detr"))
    with pytest.raises(ValueError, match="sampling 'grid'"):
        use_sampling(model, "grid")


def test_op_choice_uses_the_op_or_names_what_is_missing() -> None:
    model = wrap_ffns(make_tiny_model("deformable-detr"))
    op, missing = sampling._torch_op()
    if op is None:
        with pytest.raises(NotBuiltError, match="--torch-sampling op: " + missing.split(":")[0]):
            use_sampling(model, "op")
        assert sampling_in_use(model) == TRANSFORMERS_SAMPLING
    else:
        assert use_sampling(model, "op") == OP_SAMPLING == sampling_in_use(model)
        assert all(isinstance(core, OpSampling) for core in _cores(model))


def test_auto_falls_back_with_one_warning_where_the_op_is_missing(monkeypatch) -> None:
    model = wrap_ffns(make_tiny_model("deformable-detr"))
    op, missing = sampling._torch_op()
    monkeypatch.setattr(sampling, "_warned", False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        chosen = use_sampling(model, "auto")
        use_sampling(model, "auto")
    if op is None:
        assert chosen == TRANSFORMERS_SAMPLING
        assert [str(w.message) for w in caught] == [
            f"{missing}: Deformable DETR samples with transformers' module"
        ]
    else:
        assert chosen == OP_SAMPLING and not caught


def test_switch_back_restores_the_very_modules_and_state_dict() -> None:
    op = _op_or_skip()
    model = gated_tiny("deformable-detr")
    cores, state = _cores(model), model.state_dict()
    use_sampling(model, "op")
    assert all(isinstance(core, OpSampling) and core.op is op for core in _cores(model))
    assert model.state_dict().keys() == state.keys()
    with transformers_sampling(model):
        assert _cores(model) == cores
    assert sampling_in_use(model) == OP_SAMPLING
    use_sampling(model, "transformers")
    assert _cores(model) == cores


def test_op_matches_transformers_module_on_edge_cases() -> None:
    op = _op_or_skip()
    cases = [
        dict(levels=[(12, 10), (6, 5), (3, 3), (1, 1)]),  # locations outside [0, 1]; a 1x1 level
        dict(levels=[(4, 4), (2, 2)], queries=0),
        dict(levels=[(6, 6), (3, 3)], spread=(-2.0, 3.0)),
    ]
    for case in cases:
        inputs = attention_case(**case)
        expected = transformers_reference(*inputs)
        actual = op(*inputs)
        assert actual.shape == expected.shape
        assert (actual - expected).abs().max().item() <= OP_BOUND if actual.numel() else True


def test_whole_model_on_the_op_matches_transformers_module() -> None:
    _op_or_skip()
    model = gated_tiny("deformable-detr")
    pixel_values, pixel_mask = (torch.from_numpy(a) for a in random_inputs(2, 128, 128))
    pixel_mask[1, :, 64:] = 0  # batch 2 with a padded image
    with torch.no_grad():
        expected = model(pixel_values=pixel_values, pixel_mask=pixel_mask)
        use_sampling(model, "op")
        actual = model(pixel_values=pixel_values, pixel_mask=pixel_mask)
    for name in ("logits", "pred_boxes"):
        assert (getattr(actual, name) - getattr(expected, name)).abs().max().item() <= MODEL_BOUND


def test_gradients_fall_back_to_transformers_module() -> None:
    _op_or_skip()
    model = wrap_ffns(make_tiny_model("deformable-detr"))
    use_sampling(model, "op")
    value, shapes, starts, locations, weights = attention_case([(4, 4), (2, 2)])
    value.requires_grad_(True)
    core = _cores(model)[0]
    out = core(value, shapes, [(4, 4), (2, 2)], starts, locations, weights, 64)
    out.sum().backward()  # the op has no backward: transformers' module ran
    assert value.grad is not None


def test_a_model_on_the_op_copies_and_its_float64_copy_samples_with_transformers() -> None:
    """The fp64 reference of `gsmlp validate` deep-copies the model: the copy shares the op, and in float64
    (which the kernels lack) it samples with its own copy of transformers' module."""
    import copy

    _op_or_skip()
    model = gated_tiny("deformable-detr")
    use_sampling(model, "op")
    copied = copy.deepcopy(model).double()
    assert sampling_in_use(copied) == OP_SAMPLING
    pairs = zip(_cores(model), _cores(copied), strict=True)
    assert all(a.transformers_module is not b.transformers_module for a, b in pairs)
    pixel_values, pixel_mask = (torch.from_numpy(a) for a in random_inputs(1, 128, 128))
    with torch.no_grad():
        expected = model(pixel_values=pixel_values, pixel_mask=pixel_mask).logits
        actual = copied(pixel_values=pixel_values.double(), pixel_mask=pixel_mask).logits
    assert actual.dtype == torch.float64 and (actual - expected.double()).abs().max().item() <= MODEL_BOUND
