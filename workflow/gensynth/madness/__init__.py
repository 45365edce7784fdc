"""madness: self-consuming diffusion loops and the signals that detect their collapse.

Real data and the IDX reader (``data``), the LeNet feature extractor (``lenet``), the
generational loop (``loop``), the Jacobian probe set (``probes``), per-generation metrics
(``evaluation``), departure detection (``detection``) and figures (``figures``); the FID/PRDC
formulas live in ``metrics`` and the Jacobian spectrum in ``jacobian``.
"""
