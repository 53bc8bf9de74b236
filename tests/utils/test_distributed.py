"""tsd_mmdet.utils.distributed: a GPU config adapted to CPU (SyncBN -> BN), and the process-group
teardown that joins gloo's threads."""
import os
import os.path as osp
import re
import subprocess
import sys

import pytest

pytest.importorskip('mmdet')
import torch  # noqa: E402
from mmengine.config import Config  # noqa: E402

from tsd_mmdet.utils.distributed import adapt_to_cpu  # noqa: E402

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOLS = osp.join(ROOT, 'tools')
BASELINE = osp.join(ROOT, 'configs', 'shapes', 'faster-rcnn_r18_fpn_shapes.py')
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason='tests the CPU fallback')


@no_cuda
def test_syncbn_becomes_bn_without_cuda():
    cfg = Config.fromfile(BASELINE)
    cfg.model.backbone.norm_cfg = dict(type='SyncBN', requires_grad=True)
    cfg.model.neck.norm_cfg = dict(type='SyncBN')
    cfg.sync_bn = 'torch'
    adapt_to_cpu(cfg, 'none')
    assert cfg.model.backbone.norm_cfg.type == 'BN' and cfg.model.neck.norm_cfg.type == 'BN'
    assert cfg.sync_bn is None
    assert cfg.env_cfg.dist_cfg.backend == 'nccl'  # not distributed: left alone


_CLOSE_SCRIPT = '''
import os
import torch
import torch.distributed as dist
from mmengine.model import MMDistributedDataParallel
from tsd_mmdet.utils.distributed import close_process_group

dist.init_process_group('gloo', init_method='tcp://127.0.0.1:{port}', rank=0, world_size=1)
model = MMDistributedDataParallel(torch.nn.Linear(2, 2), device_ids=None)
model(torch.ones(1, 2)).sum().backward()
if {drop}:
    del model
close_process_group()
names = [open(f'/proc/self/task/{{t}}/comm').read().strip() for t in os.listdir('/proc/self/task')]
print('GLOO_THREADS', sum('gloo' in n for n in names), flush=True)
os._exit(0)  # this check's own exit must not depend on what it measures
'''


@pytest.mark.skipif(not osp.isdir('/proc/self/task'), reason='reads thread names from /proc')
@pytest.mark.parametrize('drop', [True, False])
def test_close_process_group_joins_gloo_threads(drop, free_port):
    """tools/train.py and test.py drop the runner, then close the group: gloo's threads must be
    gone before interpreter teardown (left alive, a rank can abort there). Kept alive by a DDP
    model, they survive, which is why the tools drop the runner first."""
    script = _CLOSE_SCRIPT.format(port=free_port(), drop=drop)
    out = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                         timeout=120, env=dict(os.environ, OMP_NUM_THREADS='1'))
    found = re.search(r'GLOO_THREADS (\d+)', out.stdout)
    assert found, out.stdout[-2000:] + out.stderr[-3000:]
    if drop:
        assert int(found.group(1)) == 0
    else:
        assert int(found.group(1)) > 0
