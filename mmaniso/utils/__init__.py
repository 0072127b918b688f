"""Glue the tools share: config set-up and work-dir guards
(:mod:`.launch`), the CPU distributed start (:mod:`.dist`), the device
feed's config override (:mod:`.device_feed`), atomic file writes
(:mod:`.atomic_files`), a file's SHA-256 (:mod:`.file_digest`) and the
test for an image file cut short (:mod:`.image_files`)."""

from .dist import prepare_cpu_distributed

__all__ = ['prepare_cpu_distributed']
