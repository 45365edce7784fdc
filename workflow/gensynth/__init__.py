"""gensynth: the library that the pipeline's scripts share.

Common pieces live at the top level (seeding, io, provenance, device, progress,
config, cli); each research module has its own subpackage.
"""

__version__ = "0.1.0"
