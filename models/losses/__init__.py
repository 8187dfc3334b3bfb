"""Training losses of the project's models, one module per family.

pixel: Charbonnier (EDVR, IFRNet) | laplacian: LapLoss (RIFE) | census: CensusLoss, GeometryLoss
(IFRNet) | distillation: RIFE's leakage distillation, IFRNet's flow distillation | pseudo_flow:
pseudo flow labels (callable estimator or OpenCV DIS) | perceptual: VGG19 loss from a local file |
composite: the published RIFE and IFRNet objectives.
"""
from vsrvfi.models.losses.census import CensusLoss, GeometryLoss, local_differences
from vsrvfi.models.losses.composite import IFRNetLoss, RIFELoss
from vsrvfi.models.losses.distillation import (FlowDistillationLoss, RIFEDistillationLoss, adaptive_charbonnier,
                                        rife_distillation_loss, robust_weight)
from vsrvfi.models.losses.laplacian import LapLoss, laplacian_pyramid
from vsrvfi.models.losses.perceptual import VGGPerceptualLoss
from vsrvfi.models.losses.pixel import Charbonnier, reduce_loss
from vsrvfi.models.losses.pseudo_flow import FlowEstimator, PseudoFlowLabeler, dis_flow

__all__ = [
    "Charbonnier", "reduce_loss",
    "LapLoss", "laplacian_pyramid",
    "CensusLoss", "GeometryLoss", "local_differences",
    "RIFEDistillationLoss", "rife_distillation_loss", "FlowDistillationLoss", "robust_weight",
    "adaptive_charbonnier",
    "FlowEstimator", "PseudoFlowLabeler", "dis_flow",
    "VGGPerceptualLoss",
    "RIFELoss", "IFRNetLoss",
]
