"""The metadata a deployable file carries for its runtimes (gsmlp.deploy_metadata), from the model."""

from __future__ import annotations

from torch import nn

from gsmlp.deploy_metadata import DeployMetadata, labels_from_id2label
from gsmlp.model.processing import PreprocessConfig


def runtime_metadata(
    model: nn.Module, family: str, mode: str, dtype: str, preprocess: PreprocessConfig | None
) -> dict[str, str]:
    """The metadata_props of the exported file: family, activation, preprocessing, label names, versions.

    preprocess: the loaded detector's (its preprocessor_config.json); None records DETR's defaults.
    """
    preprocess = preprocess or PreprocessConfig()
    config = model.config
    return DeployMetadata(
        family=family,
        mode=mode,
        dtype=dtype,
        shortest_edge=preprocess.shortest_edge,
        longest_edge=preprocess.longest_edge,
        image_mean=tuple(preprocess.image_mean),
        image_std=tuple(preprocess.image_std),
        pad_multiple=preprocess.pad_multiple,
        labels=labels_from_id2label(getattr(config, "id2label", None), int(config.num_labels)),
    ).to_props()
