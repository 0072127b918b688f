from .anisotropic_loss import AnisotropicLoss

__all__ = ['AnisotropicLoss']
