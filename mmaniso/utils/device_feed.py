"""The one override that moves a top-down config's augmentation onto the
device (``tools/train.py --device-augment``)."""

import copy

SOURCES = ('array', 'decode')


def device_augment_config(cfg, source: str = 'array'):
    """Trains ``cfg`` with the augmentation on the model's device.

    The training dataset is wrapped in ``CropFeedDataset`` (the CPU reads
    crops and packs them), batches are stacked by ``default_collate``, and
    the data preprocessor becomes ``BatchAugmentDataPreprocessor`` with a
    ``TopdownBatchAugment`` whose settings are read from the config's own
    training pipeline, so the draws keep its distributions. Validation,
    testing and the checkpoints are unchanged. The same as these lines in
    a config (docs/benchmarks.md, "Device feed")::

        train_dataloader = dict(
            collate_fn=dict(type='default_collate'),
            dataset=dict(_delete_=True, type='CropFeedDataset',
                         source='array',
                         dataset=_base_.train_dataloader.dataset))
        model = dict(data_preprocessor=dict(
            type='BatchAugmentDataPreprocessor',
            batch_augments=[dict(
                type='TopdownBatchAugment',
                pipeline=_base_.train_dataloader.dataset.pipeline)]))

    Args:
        cfg (mmengine.Config): A top-down regression config, after any
            ``--cfg-options`` (its training ``data_root`` should be the
            face-crop cache).
        source: ``CropFeedDataset``'s: ``'array'`` (the memory-mapped
            crops of ``make_crop_cache.py --array``) or ``'decode'``.

    Returns:
        mmengine.Config: ``cfg``, changed in place.

    Raises:
        ValueError: A pipeline step with no device counterpart, a dataset
            wrapper, another data preprocessor, or a config that already
            uses the device feed.
    """
    from mmaniso.models.data_preprocessors import topdown_augment_settings

    if source not in SOURCES:
        raise ValueError(f'source must be one of {SOURCES}, got {source!r}')
    loader = cfg.train_dataloader
    dataset = loader.dataset
    kind = dataset.get('type')
    if kind == 'CropFeedDataset':
        raise ValueError('the config already trains from CropFeedDataset')
    pipeline = dataset.get('pipeline')
    if not pipeline:
        raise ValueError(
            f'train_dataloader.dataset ({kind}) has no pipeline to take the '
            'augmentation from; dataset wrappers are not supported'
        )
    topdown_augment_settings(pipeline)  # refuses what cannot move
    preprocessor = copy.deepcopy(dict(cfg.model.get('data_preprocessor')))
    name = str(preprocessor.get('type', '')).rsplit('.', 1)[-1]
    if name not in ('PoseDataPreprocessor', 'BatchAugmentDataPreprocessor'):
        raise ValueError(
            f'model.data_preprocessor is {name!r}; the device augmentation '
            'replaces PoseDataPreprocessor only'
        )
    if preprocessor.get('batch_augments'):
        raise ValueError(
            'model.data_preprocessor already has batch_augments; add '
            'TopdownBatchAugment to them by hand'
        )
    preprocessor.pop('_scope_', None)
    preprocessor.update(
        type='BatchAugmentDataPreprocessor',
        batch_augments=[
            dict(type='TopdownBatchAugment', pipeline=copy.deepcopy(pipeline))
        ],
    )
    cfg.model.data_preprocessor = preprocessor
    loader.dataset = dict(
        type='CropFeedDataset', source=source, dataset=dataset
    )
    loader.collate_fn = dict(type='default_collate')
    return cfg
