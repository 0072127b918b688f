"""Glue the tools share: config set-up and work-dir guards
(:mod:`.launch`), the CPU distributed start (:mod:`.dist`), the device
feed's config override (:mod:`.device_feed`), atomic file writes
(:mod:`.atomic_files`) and a file's SHA-256 (:mod:`.file_digest`)."""

from .dist import prepare_cpu_distributed

__all__ = ['prepare_cpu_distributed']
