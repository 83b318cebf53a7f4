"""Policy loading (hub id, local path, embedded SmolLM2-135M, tiny test model) and the SVD adapter with
its main and quarantine knobs."""
