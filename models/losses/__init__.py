"""Training losses of the project's models, one module per family."""
from models.losses.pixel import Charbonnier, reduce_loss

__all__ = ["Charbonnier", "reduce_loss"]
