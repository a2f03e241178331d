"""Token types: the only place that knows an algorithm."""
