"""Datasets (COCO instances JSON + images, the generated `shapes` splits) and COCO evaluation."""
