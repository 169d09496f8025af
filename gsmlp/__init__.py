"""gsmlp: activation-sparsity gating for the FFN layers of DETR-family detectors.

The stages of the data flow live in sibling packages:
  gsmlp.model        load a detector, wrap every FFN in GatedSparseMLP, pre/post-processing
  gsmlp.data         datasets (COCO JSON + images, the generated `shapes` set) and COCO evaluation
  gsmlp.calibration  activation statistics, SIBS keep-masks, MGS micro-gates -> gated checkpoint
  gsmlp.exporter     ONNX with one GatedSparseMLP node per FFN
  gsmlp.kernels      the CPU/CUDA GatedSparseMLP kernels (C ABI) as a torch custom op
  gsmlp.validation   the same images through every backend -> COCO mAP, parity, report
  gsmlp.runtime      deploy-time runners (TensorRT + pycuda, no torch)
"""

__version__ = "0.1.0"
