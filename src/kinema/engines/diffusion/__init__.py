"""The diffusers engines: the shared engine (``engine``) and one file per model family
(``wan_ti2v``, ``wan_i2v``, ``ltx``), as diffusers keeps ``pipelines/wan/``. Importing this
package loads no torch: the engine base does, and only the model files import it."""

from kinema.engines.diffusion.options import DiffusionOptions
from kinema.engines.diffusion.residency import Residency
from kinema.engines.diffusion.shapes import FrameRule, fit_size

# Engine kind -> the model file (a module of this package) and its engine class.
MODEL_FILES: dict[str, tuple[str, str]] = {
    "wan_ti2v": ("wan_ti2v", "WanTI2VEngine"),
    "wan_i2v": ("wan_i2v", "WanI2VEngine"),
    "ltx": ("ltx", "LTXVideoEngine"),
    "ltx2": ("ltx", "LTX2Engine"),
}

__all__ = ["MODEL_FILES", "DiffusionOptions", "FrameRule", "Residency", "fit_size"]
