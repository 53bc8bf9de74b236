"""TSDRunner: mmengine's Runner that prepares and checks a run's data before building its loaders.

Not an equation of the paper. Our configs set ``runner_type = 'TSDRunner'``, which mmdet's own
tools/train.py and tools/test.py honour (``RUNNERS.build(cfg)``) as ours do, so every tool gets:

- a GPU-minded config adapted to a machine without CUDA (``from_cfg``:
  :func:`tsd_mmdet.utils.distributed.adapt_to_cpu`: SyncBN -> BN, gloo for ``--launcher
  pytorch``);
- before ``train()``, ``val()`` or ``test()`` builds its dataloaders: the generated shapes data
  made when a dataset of that loop reads it and it is missing
  (:func:`tsd_mmdet.datasets.ensure_default_dataset`), then that loop's datasets and metrics
  checked (:func:`tsd_mmdet.datasets.check_datasets`), the process ending with one line,
  ``dataset error: ...``, naming the file and the key to change when they cannot be used (instead
  of a trace from inside a dataset, or a silent wrong result);
- a checkpoint that cannot be read (``load_from``, ``--resume`` with none readable, the checkpoint
  to test) ends the process with one line too, ``checkpoint error: ...``.
"""
import contextlib
import copy

from mmengine.config import Config
from mmengine.registry import RUNNERS
from mmengine.runner import Runner
from torch import nn

from ..datasets import DatasetCheckError, check_datasets, ensure_default_dataset
from ..utils.distributed import adapt_to_cpu
from .checkpoint_io import CheckpointError

__all__ = ['TSDRunner']


@RUNNERS.register_module()
class TSDRunner(Runner):
    """:class:`mmengine.runner.Runner` that checks each loop's data before building it.

    Same arguments and behaviour as mmengine's Runner otherwise. Data problems end the process
    with ``SystemExit('dataset error: ...')``, unreadable checkpoints with ``SystemExit('checkpoint
    error: ...')`` (one line, no trace), in every rank alike.
    """

    @classmethod
    def from_cfg(cls, cfg: Config) -> 'TSDRunner':
        """Build the runner from a config, adapted first to a machine without CUDA.

        Args:
            cfg (Config): The run's config (``cfg.launcher``: 'none', 'pytorch', ...).

        Returns:
            TSDRunner: The runner.
        """
        cfg = copy.deepcopy(cfg)
        adapt_to_cpu(cfg, cfg.get('launcher') or 'none')
        return super().from_cfg(cfg)

    def train(self) -> nn.Module:
        """Check the training (and validation) data, then ``Runner.train``."""
        self._prepare_data(('train', 'val') if self._val_loop is not None else ('train',))
        with _one_line_checkpoint_errors():
            return super().train()

    def val(self) -> dict:
        """Check the validation data, then ``Runner.val``."""
        self._prepare_data(('val',))
        with _one_line_checkpoint_errors():
            return super().val()

    def test(self) -> dict:
        """Check the test data, then ``Runner.test``."""
        self._prepare_data(('test',))
        with _one_line_checkpoint_errors():
            return super().test()

    def _prepare_data(self, splits: tuple[str, ...]) -> None:
        try:
            ensure_default_dataset(self.cfg, splits)
            check_datasets(self.cfg, splits)
        except DatasetCheckError as e:
            raise SystemExit(f'dataset error: {e}') from None


@contextlib.contextmanager
def _one_line_checkpoint_errors():
    try:
        yield
    except CheckpointError as e:
        raise SystemExit(f'checkpoint error: {e}') from None
