"""Training: the one loop (``loop.train``), tasks (``tasks``), and helpers every task may use."""
