"""scripts/train_small.py trains what it says: every weight, the backbone included, by detection alone."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from gsmlp.model.configs import tiny_config
from tests.conftest import REPO_ROOT


def _train_small():
    spec = importlib.util.spec_from_file_location("train_small", REPO_ROOT / "scripts" / "train_small.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["train_small"] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


train_small = _train_small()


def _trainer(family: str, out: Path, *extra: str):
    args = train_small.parse_args(
        ["--family", family, "--out", str(out), "--batch-size", "2", "--pretrain-steps", "0", *extra]
    )
    config = tiny_config(family, num_labels=train_small.NUM_LABELS)
    trainer, start = train_small.make_trainer(args, config)
    return trainer, start


@pytest.mark.parametrize("family", ["detr", "deformable-detr"])
def test_one_detection_step_changes_every_backbone_weight(family, tmp_path, one_torch_thread):
    # --seg-weight 0: the backbone can only learn from the detection loss, which a frozen backbone hides.
    trainer, _ = _trainer(family, tmp_path / "out", "--groups", "2", "--seg-weight", "0", "--warmup", "1")
    backbone = trainer.model.model.backbone
    before = {name: p.detach().clone() for name, p in backbone.named_parameters()}
    assert before, "the backbone has no parameters"
    trainer.step(0)
    unchanged = [name for name, p in backbone.named_parameters() if torch.equal(p, before[name])]
    assert not unchanged, f"backbone weights that did not train: {unchanged}"


def test_training_refuses_a_frozen_parameter(tmp_path, one_torch_thread):
    trainer, _ = _trainer("detr", tmp_path / "out")
    name, parameter = next(iter(trainer.model.model.backbone.named_parameters()))
    parameter.requires_grad_(False)
    with pytest.raises(SystemExit, match="refusing to train: 1 parameters") as refused:
        train_small.require_all_trained(trainer.model, trainer.optimizer)
    assert name.split(".")[-1] in str(refused.value)


def test_saved_model_is_stock_with_the_first_query_group(tmp_path, one_torch_thread):
    trainer, _ = _trainer("deformable-detr", tmp_path / "out", "--groups", "3")
    config = trainer.model.config
    stock = train_small.stock_model(trainer.average.state, "deformable-detr", config, 3)
    assert stock.config.num_queries * 3 == config.num_queries
    own = trainer.model.model.query_position_embeddings.weight[: stock.config.num_queries]
    assert torch.equal(stock.model.query_position_embeddings.weight, own)
    assert type(stock).__module__.startswith("transformers.")


def test_training_images_never_come_from_an_evaluation_seed(tmp_path):
    with pytest.raises(SystemExit):
        train_small.parse_args(["--family", "detr", "--out", str(tmp_path), "--seed", "2"])


def test_detr_starts_from_its_papers_initialisation(tmp_path, one_torch_thread):
    # transformers' N(0, 0.02) everywhere left every query attending and decoding alike (docs/models.md)
    trainer, _ = _trainer("detr", tmp_path / "out")
    core = trainer.model.model
    assert core.query_position_embeddings.weight.std() > 0.5
    fc1 = core.encoder.layers[0].mlp.fc1.weight
    bound = (6 / sum(fc1.shape)) ** 0.5  # Xavier-uniform
    assert fc1.abs().max() <= bound and fc1.std() > 0.5 * bound / 3**0.5


def test_block_sparsity_counts_the_blocks_a_token_uses(tmp_path, one_torch_thread):
    trainer, _ = _trainer("detr", tmp_path / "out", "--ffn-sparsity", "1", "--ffn-block-sparsity", "1")
    (_, neurons), (_, blocks) = trainer.sparsity
    assert (neurons.block_size, blocks.block_size) == (1, 8)
    # 16 neurons: 3 active in one block of 8, then a 4th in the other block.
    one_block = torch.zeros(1, 16)
    one_block[0, :3] = 1.0
    two_blocks = one_block.clone()
    two_blocks[0, 9] = 1.0
    assert blocks.hoyer(one_block).item() == pytest.approx(0.5)  # one of two blocks
    assert neurons.hoyer(one_block).item() == pytest.approx(3 / 16)
    assert blocks.hoyer(two_blocks).item() > 0.9  # two of two, unequal
    trainer.step(0)  # both terms are in the loss and leave nothing behind
    assert not neurons.values and not blocks.values
