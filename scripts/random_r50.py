"""Write a randomly initialised full-size DETR-R50 or Deformable-DETR-R50 as a Hugging Face folder.

No pretrained weights can be assumed, yet the real-image checks need full-size models with the real
layouts (80 COCO classes, d_model 256, 6+6 layers, FFN 2048 / 1024). Seeded, so the folder is the same on
every machine with the same torch:

    python scripts/random_r50.py --family detr --out runs/detr-r50-random
    python scripts/random_r50.py --family deformable-detr --out runs/deformable-detr-r50-random

Every gsmlp command then takes `--model runs/detr-r50-random` (docs/EXPORT.md, "Real-image check").
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from gsmlp.io import atomic_directory
from gsmlp.model.configs import deformable_detr_r50_config, detr_r50_config
from gsmlp.model.detector import FAMILIES

CONFIGS = {"detr": detr_r50_config, "deformable-detr": deformable_detr_r50_config}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--family", required=True, choices=sorted(CONFIGS))
    parser.add_argument("--out", type=Path, required=True, help="the folder to write (replaced whole)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    model = FAMILIES[args.family][2](CONFIGS[args.family]())
    with atomic_directory(args.out) as folder:
        model.save_pretrained(folder)
    print(f"wrote {args.out}: random {args.family} R50, seed {args.seed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
