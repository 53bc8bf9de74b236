"""Fixtures shared across tests/: the tiny generated datasets (COCO shapes and its OpenImages copy)
and copies of them for a test to break. Not an equation of the paper: test data only."""
import shutil

import pytest

from tsd_mmdet.datasets import shapes


@pytest.fixture(scope='module')
def tiny_data(tmp_path_factory):
    """Root (with the trailing slash) of a COCO shapes dataset: 8 train and 4 val images."""
    root = tmp_path_factory.mktemp('shapes')
    shapes.generate_dataset(str(root), num_train=8, num_val=4, min_image_size=64,
                            max_image_size=128, max_objects=4)
    return str(root) + '/'


@pytest.fixture(scope='module')
def tiny_openimages(tmp_path_factory):
    """Root of the OpenImages copy of a COCO shapes dataset of 6 train and 3 val images."""
    coco = tmp_path_factory.mktemp('shapes')
    root = tmp_path_factory.mktemp('shapes_openimages')
    shapes.generate_dataset(str(coco), num_train=6, num_val=3, min_image_size=64,
                            max_image_size=128, max_objects=4)
    shapes.generate_openimages(str(root), str(coco))
    return root


@pytest.fixture
def copy_of(tmp_path):
    """Factory: ``copy_of(root)`` -> a copy of that dataset at ``tmp_path / 'data'``, to break."""
    def copy(root):
        dst = tmp_path / 'data'
        shutil.copytree(root, dst)
        return dst

    return copy
