"""The diffusers classes stylebot uses, imported from the modules that define them.

diffusers' top-level ``__init__`` binds each name first to a placeholder from
``diffusers.utils.dummy_*_objects`` (its fallback when torch is missing), and a type
checker reads that binding: through ``from diffusers import StableDiffusionPipeline`` every
attribute and call of a pipeline, UNet, VAE or scheduler was unchecked or wrongly
flagged. At run time these are the very same class objects as the top-level names.
"""

from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL
from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel
from diffusers.pipelines.pipeline_utils import DiffusionPipeline
from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import (
    StableDiffusionPipeline,
)
from diffusers.pipelines.stable_diffusion_xl.pipeline_stable_diffusion_xl import (
    StableDiffusionXLPipeline,
)
from diffusers.schedulers.scheduling_ddim import DDIMScheduler
from diffusers.schedulers.scheduling_ddpm import DDPMScheduler
from diffusers.schedulers.scheduling_euler_discrete import EulerDiscreteScheduler

__all__ = [
    "AutoencoderKL",
    "DDIMScheduler",
    "DDPMScheduler",
    "DiffusionPipeline",
    "EulerDiscreteScheduler",
    "StableDiffusionPipeline",
    "StableDiffusionXLPipeline",
    "UNet2DConditionModel",
]
