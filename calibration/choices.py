"""The names of the calibration choices, importable without torch (the CLI builds its help from them)."""

METHODS = ("sibs", "mgs", "sibs+mgs")
GATE_LAYERS = ("all", "encoder")  # which FFNs get a gate
LABELS = ("any", "magnitude")  # gate labels, see gates.py
ORDERINGS = ("identity", "frequency", "coactivation")  # neuron permutations, see permutation.py
DEFAULT_SWEEP = {"sibs": "0,0.001,0.01,0.05", "mgs": "0.5,0.7,0.8,0.85,0.9,0.95"}
