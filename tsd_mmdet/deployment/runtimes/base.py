"""The runner interface of a deployed detector, and the registry of runtimes by name.

Not an equation of the paper: a runtime runs the exported graph (eq. 3-6 as ``RoiAlign``); this
module holds what every runtime shares (loading errors, the contract check, the config check).
"""
import abc
import json

import numpy as np
from mmengine.config import Config

from ..checks import ExportError
from ..contract import INPUT, METADATA_KEY, OUTPUTS, check_metadata

__all__ = ['POINTWISE_ROI_ALIGN', 'RUNTIMES', 'DeployedDetector', 'build_runtime',
           'register_runtime']

RUNTIMES: dict[str, type['DeployedDetector']] = {}  # backend name -> runtime, register_runtime
# How a profile names the RoiAlign of Point.w (eq. 5-6: 1x1 outputs over K * oh * ow sub-boxes),
# counted apart from the other RoiAlign nodes (P, Prop.w, the baselines' and the mask's pooling).
POINTWISE_ROI_ALIGN = 'RoiAlign (Point.w sub-boxes)'


class DeployedDetector(abc.ABC):
    """A model file written by the export (``tools/deployment/pytorch2onnx.py``), run by one
    runtime: ``detector(image)``, image (1, 3, H, W) float32 array as the config's test pipeline
    delivers it; returns ``dict(dets=(1, N, 5), labels=(1, N)[, masks=(1, N, 28, 28)])`` (numpy).

    A runtime subclasses it, implements :meth:`load`, :meth:`metadata`, :meth:`signature` and
    :meth:`forward`, and registers itself with :func:`register_runtime`; loading errors, the
    contract check (one input ``image``, the outputs of ``OUTPUTS``), the metadata and
    :meth:`check_config` are this class's.

    Args:
        path (str): The model file.
        threads (int, optional): The runtime's threads for one inference. Default: its own.
        precision (str): Inference precision, one of the class's ``precisions``. Default f32.

    Raises:
        ExportError: a file the runtime cannot load, or not written by the export (no
            metadata, another input/output contract), or a precision the runtime does not have.
    """

    name = ''  # the backend name (``--backend``), set by register_runtime
    title = ''  # how messages name the runtime, e.g. 'ONNX Runtime'
    precisions: tuple[str, ...] = ('f32',)  # what ``precision`` may be, the default first

    def __init__(self, path: str, threads: int | None = None, precision: str = 'f32'):
        if precision not in self.precisions:
            raise ExportError(f"{self.title} runs precision {', '.join(self.precisions)}, got "
                              f'{precision!r}: pass --precision {self.precisions[0]}')
        self.path, self.threads, self.precision = path, threads, precision
        try:
            self.load(path, threads, precision)
        except ExportError:
            raise
        except Exception as e:  # runtimes raise their own exception types (or RuntimeError)
            raise ExportError(f'{self.title} cannot load {path}: '
                              f'{str(e).strip().splitlines()[0][:300]}') from None
        meta = self.metadata()
        if meta is None:
            raise ExportError(f'{path} has no {METADATA_KEY!r} metadata: export it with '
                              'tools/deployment/pytorch2onnx.py')
        self.meta = json.loads(meta)
        inputs, outputs = self.signature()
        expected = list(OUTPUTS[:3 if self.meta.get('with_mask') else 2])
        if inputs != [INPUT] or outputs != expected:
            raise ExportError(f'{path} does not have the export contract (input image (1, 3, H, '
                              f'W) float32, outputs {expected}): re-export it with '
                              'tools/deployment/pytorch2onnx.py')

    @abc.abstractmethod
    def load(self, path: str, threads: int | None, precision: str) -> None:
        """Read and prepare the model file; any exception becomes a one-line ExportError."""

    @abc.abstractmethod
    def metadata(self) -> str | None:
        """The file's ``METADATA_KEY`` entry (JSON), None where it has none."""

    @abc.abstractmethod
    def signature(self) -> tuple[list[tuple[str, str, int]], list[str]]:
        """``([(name, numpy dtype name, rank) of each input], [name of each output])``."""

    @abc.abstractmethod
    def forward(self, image: np.ndarray) -> list[np.ndarray]:
        """The outputs, in the file's order, of one contiguous (1, 3, H, W) float32 image."""

    def profile(self, image: np.ndarray, runs: int) -> dict[str, float]:
        """Where the runtime spends its time: milliseconds per operator type summed over ``runs``
        inferences of ``image`` (after one untimed run), from the runtime's own profiler; the
        Point.w ``RoiAlign`` as :data:`POINTWISE_ROI_ALIGN`. Optional for a runtime.

        Raises:
            ExportError: the runtime has no profiler here.
        """
        raise ExportError(f'{self.title} has no per-operator profile in tsd_mmdet')

    @property
    def with_mask(self) -> bool:
        return self.meta['with_mask']

    def __call__(self, image: np.ndarray) -> dict[str, np.ndarray]:
        return dict(zip(OUTPUTS, self.forward(np.ascontiguousarray(image, np.float32))))

    def check_config(self, cfg: Config) -> None:
        """Raise :class:`ExportError` where the config differs from what the model was exported
        with (:func:`~tsd_mmdet.deployment.contract.check_metadata`).

        Args:
            cfg (Config): The config the model is about to be tested with.
        """
        check_metadata(self.meta, cfg, self.path)


def register_runtime(name: str):
    """Class decorator: make a :class:`DeployedDetector` subclass the runtime ``--backend name``.

    Raises:
        ValueError: another class already has the name.
    """

    def register(cls: type[DeployedDetector]) -> type[DeployedDetector]:
        if RUNTIMES.get(name, cls) is not cls:
            raise ValueError(f'runtime {name!r} is already {RUNTIMES[name].__qualname__}')
        cls.name = name
        RUNTIMES[name] = cls
        return cls

    return register


def build_runtime(backend: str, path: str, threads: int | None = None,
                  precision: str = 'f32') -> DeployedDetector:
    """The model file ``path`` loaded by the runtime registered as ``backend``.

    Raises:
        ExportError: an unknown backend (the message lists the registered ones), or what the
            runtime raises (see :class:`DeployedDetector`).
    """
    if backend not in RUNTIMES:
        raise ExportError(f"unknown backend {backend!r}: choose one of {', '.join(RUNTIMES)} "
                          '(or register another with tsd_mmdet.deployment.register_runtime)')
    return RUNTIMES[backend](path, threads, precision)
