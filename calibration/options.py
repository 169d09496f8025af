"""What a calibration is asked to do, as plain dataclasses: the library takes them, the command line fills
them in and derives its defaults from them. Torch-free, so that `gsmlp --help` imports no torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gsmlp.calibration.choices import GATE_LAYERS, METHODS
from gsmlp.errors import GsmlpError
from gsmlp.model.block_size import DEFAULT_BLOCK_SIZE
from gsmlp.model.device_choice import DEFAULT_DEVICE
from gsmlp.model.sampling_choice import DEFAULT_SAMPLING

# MGS's target when neither a target sparsity nor a target recall is asked for.
DEFAULT_TARGET_SPARSITY = 0.9
# The sweep's cache bound (calibration/feature_cache.py): 2 GiB holds the cached features of 150
# Deformable-DETR-R50 images at 800 x 800, or of 3,300 DETR-R50 images.
DEFAULT_SWEEP_CACHE_MB = 2048


@dataclass
class CalibrationOptions:
    """How each FFN is calibrated: the method and its settings (calibration.json records them all)."""

    method: str = "sibs+mgs"
    epsilon: float = 0.0
    block_size: int = DEFAULT_BLOCK_SIZE
    rank: int = 16
    ordering: str = "coactivation"
    labels: str = "magnitude"
    target_sparsity: float | None = DEFAULT_TARGET_SPARSITY
    target_recall: float | None = None
    gate_steps: int = 600
    # The decoder FFNs see only the object queries (under a tenth of the FFN work) and cost the most AP
    # when gated (docs/CALIBRATION.md): gating the encoder alone keeps the AP at target 0.9.
    gate_layers: str = "encoder"
    threshold_passes: int = 1
    holdout_every: int = 5
    seed: int = 0

    def validate(self) -> None:
        if self.method not in METHODS:
            raise GsmlpError(f"--method {self.method!r} is not one of {', '.join(METHODS)}")
        if self.gate_layers not in GATE_LAYERS:
            raise GsmlpError(f"--gate-layers {self.gate_layers!r} is not one of {', '.join(GATE_LAYERS)}")
        if not 0.0 <= self.epsilon < 1.0:
            raise GsmlpError(f"--epsilon {self.epsilon} must be in [0, 1)")
        if self.block_size < 1 or self.rank < 1:
            raise GsmlpError(f"--block-size {self.block_size} and --rank {self.rank} must be >= 1")
        if self.uses_gates and (self.target_sparsity is None) == (self.target_recall is None):
            raise GsmlpError("MGS needs exactly one of --target-sparsity and --target-recall")
        for flag, value in (
            ("--target-sparsity", self.target_sparsity),
            ("--target-recall", self.target_recall),
        ):
            if value is not None and not 0.0 <= value <= 1.0:
                raise GsmlpError(f"{flag} {value} must be in [0, 1]")

    @property
    def uses_sibs(self) -> bool:
        return self.method in ("sibs", "sibs+mgs")

    @property
    def uses_gates(self) -> bool:
        return self.method in ("mgs", "sibs+mgs")


@dataclass
class CalibrationJob:
    """One `gsmlp calibrate` run: which model and images, what to measure, where the checkpoint goes."""

    model: str
    data: str  # a generated split (shapes-train, ...) or a COCO JSON
    out: str | Path
    images: str | None = None  # the image folder of a COCO JSON `data`
    limit: int = 500  # calibration images
    eval_data: str | None = None  # measure AP dense and gated on this data set
    eval_images: str | None = None
    eval_limit: int | None = None
    analyze_only: bool = False  # statistics and analysis only, no gates
    reservoir: int = 20000  # recorded tokens per FFN
    sweep: str | None = None  # comma-separated sweep values; None: DEFAULT_SWEEP of the method
    sweep_cache_mb: float = DEFAULT_SWEEP_CACHE_MB  # the sweep's feature cache bound; 0: no cache
    force: bool = False  # replace an output that is not an earlier calibrate output
    method: CalibrationOptions = field(default_factory=CalibrationOptions)
    torch_sampling: str = DEFAULT_SAMPLING  # Deformable DETR's sampling (gsmlp.model.sampling_choice)
    device: str = DEFAULT_DEVICE  # where the forward passes run (gsmlp.model.placement)
