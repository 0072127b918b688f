from .checks import check_data_files

__all__ = ['check_data_files']
