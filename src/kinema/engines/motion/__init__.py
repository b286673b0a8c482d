"""The ``motion`` engine: video from one still picture on the CPU, no weights downloaded.

``engine`` drives a clip: ``framing`` keeps the subject (and faces) in the frame, ``layers``
cuts the picture into subject and background and ``painting`` fills what the cut reveals,
``stage`` composes each frame from the ``camera``'s path, ``faces`` finds faces and
``face_anim`` makes them blink and speak, ``continuation`` extends an earlier video. Its sound
comes from ``kinema.engines.sound``.
"""

from kinema.engines.motion.engine import MotionEngine

__all__ = ["MotionEngine"]
