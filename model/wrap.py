"""Find every encoder and decoder FFN of a DETR-family model and wrap it in GatedSparseMLP."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from gsmlp.distributed import Group
from gsmlp.errors import GsmlpError
from gsmlp.model.block_size import DEFAULT_BLOCK_SIZE
from gsmlp.model.gated_mlp import GatedSparseMLP, Mode


@dataclass(frozen=True)
class FfnSlot:
    """Where one encoder or decoder FFN lives: the single traversal every list of FFNs is built from."""

    name: str  # "encoder.0": gsmlp's name (checkpoints, reports)
    path: str  # "model.encoder.layers.0.mlp": the module path, as named_modules() and ONNX nodes spell it
    owner: nn.Module  # the transformer layer whose `mlp` attribute holds the FFN


def ffn_slots(model: nn.Module) -> Iterator[FfnSlot]:
    """Every encoder and decoder FFN position of a DETR-family model, in model order."""
    core = getattr(model, "model", model)
    prefix = "model." if core is not model else ""
    found = False
    for part in ("encoder", "decoder"):
        layers = getattr(getattr(core, part, None), "layers", None)
        if isinstance(layers, nn.ModuleList):
            found = True
            for index, layer in enumerate(layers):
                yield FfnSlot(f"{part}.{index}", f"{prefix}{part}.layers.{index}.mlp", layer)
    if not found:
        raise GsmlpError(
            f"{type(model).__name__} has no model.encoder.layers / model.decoder.layers: "
            "gsmlp supports transformers' DETR and Deformable DETR"
        )


def check_relu(model: nn.Module) -> None:
    """Gating predicts which ReLU outputs are zero; any other activation has no exact zeros."""
    config = getattr(model, "config", None)
    activation = getattr(config, "activation_function", "relu")
    if activation != "relu":
        raise GsmlpError(
            f"the model's FFN activation is {activation!r} (config.activation_function); "
            "gsmlp gates ReLU FFNs only, because only ReLU outputs exact zeros that can be skipped"
        )


def wrap_ffns(model: nn.Module, block_size: int = DEFAULT_BLOCK_SIZE) -> nn.Module:
    """Replace each `layer.mlp` by a GatedSparseMLP in dense mode (the same function, bit for bit)."""
    check_relu(model)
    for slot in list(ffn_slots(model)):
        mlp = getattr(slot.owner, "mlp", None)
        if isinstance(mlp, GatedSparseMLP):
            continue
        if mlp is None or not hasattr(mlp, "fc1") or not hasattr(mlp, "fc2"):
            part, index = slot.name.split(".")
            raise GsmlpError(f"{part} layer {index} has no mlp.fc1/mlp.fc2 FFN to wrap")
        gated = GatedSparseMLP(
            mlp.fc1,
            mlp.fc2,
            dropout=getattr(mlp, "dropout", 0.0),
            activation_dropout=getattr(mlp, "activation_dropout", 0.0),
            block_size=block_size,
        )
        slot.owner.mlp = gated.to(mlp.fc1.weight.device).train(mlp.training)
    return model


def gated_slots(model: nn.Module) -> Iterator[tuple[FfnSlot, GatedSparseMLP]]:
    """Each wrapped FFN with its slot, in model order."""
    for slot in ffn_slots(model):
        if isinstance(slot.owner.mlp, GatedSparseMLP):
            yield slot, slot.owner.mlp


def gated_layers(model: nn.Module) -> Iterator[tuple[str, GatedSparseMLP]]:
    """Yield ("encoder.0", module), ... in model order. A bare GatedSparseMLP is a model of one layer, ""."""
    if isinstance(model, GatedSparseMLP):
        yield "", model
        return
    for slot, layer in gated_slots(model):
        yield slot.name, layer


def set_mode(model: nn.Module, mode: Mode) -> None:
    layers = list(gated_layers(model))
    if not layers:
        raise GsmlpError("the model has no GatedSparseMLP layers; wrap it with wrap_ffns first")
    for _, layer in layers:
        layer.set_mode(mode)


@contextlib.contextmanager
def modes_kept(model: nn.Module) -> Iterator[None]:
    """Every FFN's mode as it was on entry, again on exit: a stage that switches modes (validating a dense
    file) leaves the loaded model as it found it, so one load serves every stage."""
    modes = [(layer, layer.mode) for _, layer in gated_layers(model)]
    try:
        yield
    finally:
        for layer, mode in modes:
            layer.mode = mode


def reset_sparsity(model: nn.Module) -> None:
    for _, layer in gated_layers(model):
        layer.meter.reset()


def sum_sparsity(model: nn.Module, group: Group) -> None:
    """Every FFN's meter becomes the sum over the group's ranks (each counted its own shard of images).

    dense_hidden is the layer's, the same on every rank that ran at least one token.
    """
    if not group.distributed:
        return
    meters = [layer.meter for _, layer in gated_layers(model)]
    counts = group.sum(
        torch.tensor([[m.tokens, m.computed, m.zeros, m.dense_hidden, m.dense_hidden > 0] for m in meters])
    )
    seconds = group.sum(torch.tensor([[m.forward_seconds, m.metering_seconds] for m in meters]))
    for meter, count, (forward, metering) in zip(meters, counts.tolist(), seconds.tolist(), strict=True):
        meter.tokens, meter.computed, meter.zeros = count[0], count[1], count[2]
        meter.dense_hidden = count[3] // count[4] if count[4] else 0
        meter.forward_seconds, meter.metering_seconds = forward, metering


def ffn_seconds(model: nn.Module) -> float:
    """Wall time inside the FFNs since the meters were last reset, their bookkeeping left out.

    Host time: on a GPU it is the launch time unless something synchronises.
    """
    return sum(layer.meter.seconds for _, layer in gated_layers(model))


def metering_seconds(model: nn.Module) -> float:
    """Wall time the FFNs' sparsity meters spent counting since they were last reset."""
    return sum(layer.meter.metering_seconds for _, layer in gated_layers(model))


def sparsity_report(model: nn.Module) -> dict:
    """`encoder` / `decoder`: token-weighted means; `per_layer`: each FFN's own figures."""
    per_layer = {name: layer.meter.as_dict() for name, layer in gated_layers(model)}
    report: dict = {}
    for part in ("encoder", "decoder"):
        meters = [layer.meter for name, layer in gated_layers(model) if name.startswith(part + ".")]
        total = sum(m.tokens * m.dense_hidden for m in meters)
        computed = sum(m.computed for m in meters)
        zeros = sum(m.zeros for m in meters)
        report[part] = 1.0 - computed / total if total else 0.0
        report[f"{part}_activation_sparsity"] = zeros / total if total else 0.0
    report["per_layer"] = per_layer
    return report
