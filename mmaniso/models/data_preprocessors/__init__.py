from .batch_augment_data_preprocessor import BatchAugmentDataPreprocessor
from .topdown_batch_augment import (
    TopdownBatchAugment,
    topdown_augment_settings,
)

__all__ = [
    'BatchAugmentDataPreprocessor',
    'TopdownBatchAugment',
    'topdown_augment_settings',
]
