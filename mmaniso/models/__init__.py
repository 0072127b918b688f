from . import data_preprocessors, heads, losses  # noqa: F401
