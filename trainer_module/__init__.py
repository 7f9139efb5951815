"""The user's model code. The pipeline calls `preprocessing_fn` and `trainer_fn`.

Swap this package for your own by setting `module` in the pipeline config to
any importable module that exposes the same two names (and, if it likes,
`HParams`: the hyperparameters it reads, checked before a run).
"""

from trainer_module.preprocessing import preprocessing_fn
from trainer_module.trainer import HParams, trainer_fn

__all__ = ['HParams', 'preprocessing_fn', 'trainer_fn']
