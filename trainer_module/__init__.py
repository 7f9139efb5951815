"""The user's model code. The pipeline calls `preprocessing_fn` and `trainer_fn`.

Swap this package for your own by setting `module` in the pipeline config to
any importable module that exposes the same two names.
"""

from trainer_module.preprocessing import preprocessing_fn
from trainer_module.trainer import trainer_fn

__all__ = ['preprocessing_fn', 'trainer_fn']
