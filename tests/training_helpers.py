"""Tiny training configurations shared by the training tests."""

import copy
from pathlib import Path
from typing import Any, Dict

FIXTURE_ZIP = str(Path(__file__).parent / "fixtures" / "upstream_dataset_32_labels.zip")


def tiny_options(**overrides: Any) -> Dict[str, Any]:
    """Resolved training options for 32x32 data and a network of a few thousand parameters."""
    opts: Dict[str, Any] = dict(
        training_set_kwargs=dict(class_name="stylegan2_ada.training.dataset.ImageFolderDataset", path=FIXTURE_ZIP,
                                 use_labels=False, max_size=None, xflip=False, resolution=32),
        data_loader_kwargs=dict(num_workers=0),
        G_kwargs=dict(z_dim=16, w_dim=16, mapping_kwargs=dict(num_layers=2),
                      synthesis_kwargs=dict(channel_base=128, channel_max=16, num_fp16_res=0, conv_clamp=None)),
        D_kwargs=dict(channel_base=128, channel_max=16, num_fp16_res=0, conv_clamp=None,
                      block_kwargs=dict(freeze_layers=0), epilogue_kwargs=dict(mbstd_group_size=4)),
        G_opt_kwargs=dict(lr=0.0025, betas=[0, 0.99], eps=1e-8),
        D_opt_kwargs=dict(lr=0.0025, betas=[0, 0.99], eps=1e-8),
        loss_kwargs=dict(r1_gamma=1.0),
        augment_kwargs=None, augment_p=0, ada_target=None,
        metrics=[], random_seed=0, resume_pkl=None, total_kimg=0.016, kimg_per_tick=0.008,
        batch_size=8, batch_gpu=8, ema_kimg=0.01, ema_rampup=0.05, G_reg_interval=4, D_reg_interval=16,
        image_snapshot_ticks=1, network_snapshot_ticks=1, cudnn_benchmark=False, allow_tf32=False,
    )
    for key, value in overrides.items():
        opts[key] = copy.deepcopy(value)
    return opts
