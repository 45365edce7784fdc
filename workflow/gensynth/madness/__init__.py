"""madness: self-consuming diffusion loops and the signals that detect their collapse.

Real data and the IDX reader (``data``), the LeNet feature extractor (``lenet``), the
generational loop (``loop``), the Jacobian probe set (``probes``), per-generation metrics
(``evaluation``, on the shared ``gensynth.metrics``), departure detection (``detection``),
figures (``figures``) and the Jacobian spectrum (``jacobian``).
"""
