"""What the diffusers engines share. Importing this package loads no torch: the engine
base (``kinema.engines.diffusion.engine``) does, and only the model files import it."""

from kinema.engines.diffusion.options import DiffusionOptions
from kinema.engines.diffusion.residency import Residency
from kinema.engines.diffusion.shapes import FrameRule, fit_size

__all__ = ["DiffusionOptions", "FrameRule", "Residency", "fit_size"]
