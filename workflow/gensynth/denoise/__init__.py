"""denoise: a conditional Mamba denoiser for UV spectra.

MambaUV (``mamba``) runs Mamba blocks over the wavelength axis with FiLM dose conditioning and
a residual output; its selective scans (``scan``) are a plain-torch reference, a fused numba
kernel for the CPU (with its own backward, so training runs there too) and mamba-ssm's CUDA
kernel when that optional package is installed. The rest of the module:

- ``layout``: every file name of the module (plain Python, shared with the DAG); ``settings``: each
  script step's settings, their config keys and defaults (torch-free: the scripts' and rules' flags);
- ``data``: the group's data layout read with every check (manifests keyed by relative_path with
  the Noise2Noise partner, the spectra tree, the wavelength grid, dose features);
- ``phantom``: the default data, procedural UV/Vis spectra with dose-dependent bands;
- ``train`` and ``checkpoint``: Noise2Noise (or clean-target) training with EMA, early stopping,
  resume and warm start, and the checkpoint file (``mamba_tiny_uv_best.pt``);
- ``inference``: denoising arrays and whole manifests (mirrored ``_denoised.npy`` trees, shards,
  resume), and the throughput of a manifest run; ``kernels``: the fused kernels compiled once;
- ``quality``, ``downstream``, ``baseline``, ``qa``: the panel metrics (PSNR, SAM, ROI), the
  downstream proxy, the Savitzky-Golay baseline and the panel QA with its four gates;
- ``figures``: the ROI windows and panel PSNR figures; ``dag``: what the Snakefile knows.
"""
