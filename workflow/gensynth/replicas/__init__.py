"""replicas: a conditional diffusion model of FLAIR slices with lesion masks, and replica datasets.

``data``: the slice dataset and test-distribution CSV (formats, validation);
``phantom``: the embedded procedural brain phantom; ``train``: training settings and loop;
``generate``: the replica files in the group's layout; ``qa``: replicas against the real test set.
"""
