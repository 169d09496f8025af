"""The GatedSparseMLP CPU/CUDA kernel library, reached through its C ABI and registered as a torch op."""
