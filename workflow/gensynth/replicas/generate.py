"""One replica: every sample of the test distribution, seeded per sample, in the group's file layout.

``replica_XXX.npz`` holds exactly these arrays (N = total ``n_slices`` of the test CSV),
samples ordered by condition (zbin, lesion_present, domain) and then by ``k_index``:

===================  ==========  =======
array                shape       dtype
===================  ==========  =======
``images``           (N, H, H)   float16
``masks``            (N, H, H)   float16
``zbin``             (N,)        int32
``lesion_present``   (N,)        uint8
``domain``           (N,)        uint8
``condition_token``  (N,)        int32
``seed``             (N,)        int64
``k_index``          (N,)        int32
``replica_id``       (N,)        int32
===================  ==========  =======
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd

from ..diffusion import SamplerSettings, seeded_samples
from ..seeding import sha256_seed
from .data import DOMAIN_MAPPING, DOMAIN_NAMES, REPLICA_ARRAYS, condition_token

META_KEYS = [
    "replica_id",
    "seed_base",
    "n_samples",
    "n_conditions",
    "generation_timestamp",
    "config",
    "sampler",
    "domain_mapping",
    "domain_mapping_inverse",
]
META_CONFIG_KEYS = ["checkpoint_path", "config_path", "z_bins", "batch_size", "use_ema", "ema_loaded", "anatomical_conditioning", "output_dtype"]
META_SAMPLER_KEYS = ["type", "num_inference_steps", "eta", "guidance_scale"]
OUTPUT_DTYPE = "float16"


def sample_seed(seed_base: int, replica_id: int, zbin: int, lesion_present: int, domain: int, k_index: int) -> int:
    """SHA256(seed_base, replica_id, zbin, lesion_present, domain_int, sample_index), as the group's runner derives it."""
    return sha256_seed(seed_base, replica_id, zbin, lesion_present, domain, k_index)


def plan_replica(distribution: pd.DataFrame, z_bins: int, seed_base: int, replica_id: int) -> dict[str, np.ndarray]:
    """The replica's per-sample arrays but images and masks, in sample order."""
    rows = distribution.itertuples(index=False)
    columns = {"zbin": [], "lesion_present": [], "domain": [], "k_index": []}
    for row in rows:
        for k in range(int(row.n_slices)):
            columns["zbin"].append(int(row.zbin))
            columns["lesion_present"].append(int(row.lesion_present))
            columns["domain"].append(DOMAIN_MAPPING[row.domain])
            columns["k_index"].append(k)
    plan = {name: np.array(values, dtype=REPLICA_ARRAYS[name]) for name, values in columns.items()}
    plan["condition_token"] = condition_token(plan["zbin"], plan["lesion_present"].astype(np.int32), z_bins).astype(np.int32)
    plan["seed"] = np.array(
        [
            sample_seed(seed_base, replica_id, z, lesion, domain, k)
            for z, lesion, domain, k in zip(plan["zbin"], plan["lesion_present"], plan["domain"], plan["k_index"])
        ],
        dtype=np.int64,
    )
    plan["replica_id"] = np.full(len(plan["zbin"]), replica_id, dtype=np.int32)
    return plan


def generate_replica(model, scheduler_config: dict, plan: dict[str, np.ndarray], settings: SamplerSettings) -> dict[str, np.ndarray]:
    """The replica's nine arrays, in the published order and dtypes; sample i from its own seed ``plan["seed"][i]``."""
    n, size = len(plan["seed"]), model.config.sample_size
    images = np.empty((n, size, size), dtype=np.float16)
    masks = np.empty((n, size, size), dtype=np.float16)
    start = 0
    for batch in seeded_samples(model, scheduler_config, plan["condition_token"], plan["seed"], settings):  # (b, 2, H, H)
        images[start : start + len(batch)] = batch[:, 0]
        masks[start : start + len(batch)] = batch[:, 1]
        start += len(batch)
    arrays = {"images": images, "masks": masks, **plan}
    return {name: arrays[name].astype(dtype, copy=False) for name, dtype in REPLICA_ARRAYS.items()}


def replica_meta(
    replica_id: int,
    seed_base: int,
    plan: dict[str, np.ndarray],
    n_conditions: int,
    checkpoint_path: str,
    config_path: str,
    z_bins: int,
    settings: SamplerSettings,
    use_ema: bool,
    ema_loaded: bool,
    provenance: dict[str, Any],
) -> dict[str, Any]:
    """The group's metadata keys, in its order, plus ``provenance``."""
    return {
        "replica_id": replica_id,
        "seed_base": seed_base,
        "n_samples": int(len(plan["seed"])),
        "n_conditions": n_conditions,
        # The group's format (ISO 8601 without zone); the time is UTC.
        "generation_timestamp": dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat(timespec="microseconds"),
        "config": {
            "checkpoint_path": checkpoint_path,
            "config_path": config_path,
            "z_bins": z_bins,
            "batch_size": settings.batch_size,
            "use_ema": use_ema,
            "ema_loaded": ema_loaded,
            "anatomical_conditioning": True,
            "output_dtype": OUTPUT_DTYPE,
        },
        "sampler": {
            "type": "DDIM",
            "num_inference_steps": settings.num_inference_steps,
            "eta": settings.eta,
            "guidance_scale": settings.guidance_scale,
        },
        "domain_mapping": dict(DOMAIN_MAPPING),
        "domain_mapping_inverse": {str(code): name for code, name in DOMAIN_NAMES.items()},
        "provenance": provenance,
    }
