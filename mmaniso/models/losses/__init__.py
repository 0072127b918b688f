from .anisotropic_loss import AnisotropicLoss, NonFiniteLikelihoodError

__all__ = ['AnisotropicLoss', 'NonFiniteLikelihoodError']
