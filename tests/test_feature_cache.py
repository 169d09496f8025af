"""The sweep's feature cache (calibration/feature_cache.py): a hit gives the model's outputs bit for bit,
holds no backbone feature map, and a bound too small leaves batches computed as without the cache."""

from __future__ import annotations

import pytest
import torch

from gsmlp.calibration.feature_cache import MB, FeatureCache
from gsmlp.model.padding import make_padding_invariant
from gsmlp.model.wrap import wrap_ffns
from tests.conftest import make_tiny_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _model(family: str) -> torch.nn.Module:
    return make_padding_invariant(wrap_ffns(make_tiny_model(family), block_size=16))


def _batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Two batches, the second padded (its second image is smaller): the masks matter."""
    generator = torch.Generator().manual_seed(0)
    batches = []
    for height, width in ((96, 128), (128, 96)):
        pixel_values = torch.randn(2, 3, height, width, generator=generator)
        pixel_mask = torch.ones(2, height, width, dtype=torch.int64)
        batches.append((pixel_values, pixel_mask))
    batches[1][1][1, 80:, :] = 0
    batches[1][0][1, :, 80:, :] = 0
    return batches


def _outputs(model: torch.nn.Module, batches) -> list[tuple[torch.Tensor, torch.Tensor]]:
    with torch.no_grad():
        found = [model(pixel_values=values, pixel_mask=mask) for values, mask in batches]
    return [(out.logits, out.pred_boxes) for out in found]


def _equal(a, b) -> bool:
    pairs = zip(a, b, strict=True)
    return all(torch.equal(x, y) for pair_a, pair_b in pairs for x, y in zip(pair_a, pair_b, strict=True))


def test_a_hit_gives_the_same_outputs_and_holds_no_feature_map(family: str) -> None:
    model, batches = _model(family), _batches()
    expected = _outputs(model, batches)
    cache = FeatureCache()
    with cache.installed(model):
        first = _outputs(model, batches)
        second = _outputs(model, batches)
        third = _outputs(model, batches)
    assert _equal(first, expected) and _equal(second, expected) and _equal(third, expected)
    assert cache.summary()["hits"] == 4 and cache.misses == 2 and len(cache.records) == 2
    core = model.model
    projected = sum(
        output.numel() * output.element_size()
        for record in cache.records.values()
        for name, output in record.items()
        if name != "backbone"
    )
    held = [mask for record in cache.records.values() for _, mask in record["backbone"]]
    masks = sum(mask.numel() * mask.element_size() for mask in held)
    assert cache.bytes == projected + masks  # the backbone's feature maps are stand-ins of no memory
    assert _equal(_outputs(model, batches), expected)  # uninstalled: computed again
    assert "forward" not in vars(core.backbone)


def test_the_bound_leaves_batches_computed(family: str) -> None:
    model, batches = _model(family), _batches()
    expected = _outputs(model, batches)
    cache = FeatureCache(max_bytes=1)
    with cache.installed(model):
        assert _equal(_outputs(model, batches), expected)
        assert _equal(_outputs(model, batches), expected)
    assert cache.hits == 0 and cache.uncached == 4 and cache.bytes == 0


def test_a_different_batch_never_hits() -> None:
    model, batches = _model("detr"), _batches()
    cache = FeatureCache(max_bytes=64 * MB)
    changed = (batches[0][0].clone(), batches[0][1])
    changed[0][0, 0, 0, 0] += 1e-3
    with cache.installed(model):
        _outputs(model, batches[:1])
        found = _outputs(model, [changed])
    assert cache.hits == 0
    assert _equal(found, _outputs(model, [changed]))
