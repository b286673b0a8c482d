"""kinema: self-hosted image-to-video generation that speaks the Veo APIs."""

__version__ = "0.1.0"
