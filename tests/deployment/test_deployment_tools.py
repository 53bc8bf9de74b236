"""tools/deployment/ end to end on a tiny trained TSD checkpoint: export, evaluation, errors.

Not an equation of the paper: pytorch2onnx.py (ONNX and OpenVINO IR) -> test_onnx.py under ONNX
Runtime and OpenVINO against tools/test.py (same predictions, same AP), and their one-line errors.
Every tool runs as a subprocess, as a user runs it.
"""
import os.path as osp
import pickle
import re

import pytest

from tsd_mmdet import deployment

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOLS = osp.join(ROOT, 'tools')
TSD = osp.join(ROOT, 'configs', 'shapes', 'tsd-faster-rcnn_r18_fpn_shapes.py')
# 2 iterations at 128 px, one image per test batch (tools/test.py then pads each image alone, as
# the exported graph does), every detection kept, no worker processes.
TEST = ['model.test_cfg.rcnn.score_thr=0.0', 'test_dataloader.dataset.pipeline.1.scale=(128,128)',
        'test_dataloader.batch_size=1', 'test_dataloader.num_workers=0',
        'test_dataloader.persistent_workers=False']
TRAIN = ['train_cfg.max_iters=2', 'train_dataloader.batch_size=2', 'train_cfg.val_interval=100',
         'train_dataloader.dataset.pipeline.2.scale=(128,128)', 'train_dataloader.num_workers=0',
         'train_dataloader.persistent_workers=False', 'val_dataloader.num_workers=0',
         'val_dataloader.persistent_workers=False']


@pytest.fixture(scope='module')
def trained(tiny_data, tmp_path_factory, run_python):
    """(data root, checkpoint, exported ONNX file, pytorch2onnx's output) of a 2-iteration run;
    its OpenVINO IR is beside the ONNX file (``tsd.xml``)."""
    root = tmp_path_factory.mktemp('tools')
    data = tiny_data
    run_python(osp.join(TOOLS, 'train.py'), TSD, '--work-dir', str(root / 'work'),
               '--cfg-options', f'data_root={data}', *TRAIN, *TEST, timeout=600, ok=True)
    checkpoint = str(root / 'work' / 'iter_2.pth')
    model = str(root / 'tsd.onnx')
    log = run_python(osp.join(TOOLS, 'deployment', 'pytorch2onnx.py'), TSD, checkpoint, '--out',
                     model, '--openvino-ir', '--cfg-options', f'data_root={data}', *TEST,
                     timeout=600, ok=True)
    return data, checkpoint, model, log


def test_pytorch2onnx_checks_its_export(trained):
    data, _, model, log = trained
    assert osp.isfile(model) and osp.isfile(model[:-len('onnx')] + 'bin')
    assert '[1/4] exporting' in log and 'onnx.checker: passed' in log
    assert f'ONNX Runtime against PyTorch on {data}val/' in log  # a real test image
    assert f'[4/4] wrote {model[:-len("onnx")]}xml; OpenVINO against PyTorch on {data}val/' in log
    # Matched one to one, not row by row: a 2-iteration model has many near-equal scores, whose
    # order float rounding may swap (row by row, CI once saw a "difference" of 40 px so).
    for runtime in ('ONNX Runtime', 'OpenVINO'):
        found = re.search(rf'(\d+) detections \({runtime}: (\d+)\); (\d+) without a match'
                          r'(?: \(and (\d+) tied at the max_per_img cut\))?; largest difference '
                          r'of boxes and scores (\S+) \(matched pairs\)', log)
        assert found, log[-2000:]
        assert int(found[1]) > 0 and found[1] == found[2] and int(found[3]) == 0, found[0]
        assert int(found[4] or 0) <= 2 and float(found[5]) < 1e-3, found[0]


def test_test_onnx_predicts_what_test_py_predicts(trained, tmp_path, run_python):
    data, checkpoint, model, _ = trained
    options = ['--cfg-options', f'data_root={data}', *TEST]
    onnx_log = run_python(osp.join(TOOLS, 'deployment', 'test_onnx.py'), TSD, model, '--out',
                          str(tmp_path / 'onnx.pkl'), '--work-dir', str(tmp_path / 'onnx'),
                          *options, timeout=600, ok=True)
    torch_log = run_python(osp.join(TOOLS, 'test.py'), TSD, checkpoint, '--out',
                           str(tmp_path / 'torch.pkl'), '--work-dir', str(tmp_path / 'torch'),
                           *options, timeout=600, ok=True)
    # OpenVINO on the IR that pytorch2onnx.py wrote (an .xml wherever an .onnx is accepted).
    openvino_log = run_python(osp.join(TOOLS, 'deployment', 'test_onnx.py'), TSD,
                              model[:-len('onnx')] + 'xml', '--backend', 'openvino',
                              '--work-dir', str(tmp_path / 'openvino'), *options, timeout=600,
                              ok=True)
    logs = (onnx_log, torch_log, openvino_log)
    for log in logs:  # the same table: COCO's summary and the metrics line
        assert 'Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all' in log
    metrics = [re.search(r'coco/bbox_mAP: (\S+)\s+coco/bbox_mAP_50: (\S+)', log).groups()
               for log in logs]
    # Equal so far; within the 0.1 point, should a tie at the 100-detection cut swap.
    for other in metrics[1:]:
        assert all(abs(float(a) - float(b)) <= 1e-3 for a, b in zip(metrics[0], other)), metrics
    with open(tmp_path / 'onnx.pkl', 'rb') as f:
        ours = pickle.load(f)
    with open(tmp_path / 'torch.pkl', 'rb') as f:
        theirs = pickle.load(f)
    assert [r['img_path'] for r in ours] == [r['img_path'] for r in theirs] and len(ours) == 4
    for a, b in zip(ours, theirs):  # in the original image's pixels
        want, got = b['pred_instances'], a['pred_instances']
        assert len(got['labels']) == len(want['labels']) > 0
        # One to one; a detection tied with the last one kept (score within 1e-3 of it, both
        # outputs full at max_per_img = 100) may be kept by either backend.
        pairs, unmatched = deployment.match_detections(want, got)
        last = float(want['scores'].min())
        assert len(unmatched) <= 2 and all(
            len(want['labels']) == 100 and float(want['scores'][i]) <= last + 1e-3
            for i in unmatched), (unmatched, [float(want['scores'][i]) for i in unmatched], last)


def test_one_line_errors(trained, tmp_path, run_python):
    data, checkpoint, model, _ = trained
    out = run_python(osp.join(TOOLS, 'deployment', 'pytorch2onnx.py'), TSD, checkpoint, '--out',
                     str(tmp_path / 'x.onnx'), '--cfg-options', f'data_root={data}',
                     'metainfo.classes=[a,b,c,d,e,f]', timeout=600)
    assert out.returncode != 0
    assert out.stderr.strip().splitlines()[-1].startswith(
        f'export error: checkpoint {checkpoint} was trained on classes')
    assert not (tmp_path / 'x.onnx').exists()
    out = run_python(osp.join(TOOLS, 'deployment', 'test_onnx.py'), TSD, model, '--work-dir',
                     str(tmp_path), '--cfg-options', f'data_root={data}', *TEST,
                     'model.test_cfg.rcnn.max_per_img=50', timeout=600)
    assert out.returncode != 0
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith(f'export error: {model} was exported with model.test_cfg.rcnn = ')
    assert last.endswith('export it again with the same --cfg-options')


def test_quantize_then_test_onnx(trained, tmp_path, run_python):
    """tools/deployment/quantize.py as a user runs it (scope, data, progress), then the INT8 IR
    through test_onnx.py --backend openvino: the AP line of tools/test.py."""
    data, _, model, _ = trained
    xml = str(tmp_path / 'tsd_int8.xml')
    log = run_python(osp.join(TOOLS, 'deployment', 'quantize.py'), TSD, model, '--out', xml,
                     '--calib-images', '2', '--cfg-options', f'data_root={data}', *TEST,
                     timeout=600, ok=True)
    assert 'calibration: 2 of 8 training images (seed 0) through the test pipeline' in log
    assert re.search(r'quantizing with NNCF \S+ \(\d+ nodes kept in fp32\)', log), log[-2000:]
    assert f'wrote {xml}' in log and osp.isfile(xml[:-len('xml')] + 'bin')
    assert json_meta(xml)['quantization']['keep_fp32'] == ['roi_extractor']
    log = run_python(osp.join(TOOLS, 'deployment', 'test_onnx.py'), TSD, xml, '--backend',
                     'openvino', '--work-dir', str(tmp_path / 'eval'), '--cfg-options',
                     f'data_root={data}', *TEST, timeout=600, ok=True)
    assert re.search(r'bbox_mAP_copypaste: [\d.]+ ', log), log[-2000:]
    out = run_python(osp.join(TOOLS, 'deployment', 'quantize.py'), TSD, model, '--out', xml,
                     '--keep-fp32', 'no_such_module', '--calib-images', '1', '--cfg-options',
                     f'data_root={data}', *TEST, timeout=600)
    assert out.returncode != 0
    assert out.stderr.strip().splitlines()[-1].startswith(
        "export error: --keep-fp32 'no_such_module' matches no module")


def json_meta(xml: str) -> dict:
    """The metadata of an OpenVINO IR written by the tools."""
    return deployment.build_runtime('openvino', xml).meta


def test_benchmark_tool_parses(run_python):
    log = run_python(osp.join(TOOLS, 'deployment', 'benchmark_onnx.py'), '--help', timeout=120,
                     ok=True)
    for flag in ('--checkpoints', '--shape', '--threads', '--repeats', '--warmup', '--profile',
                 '--backends', '--precision', '--int8', '--calib-images'):
        assert flag in log
