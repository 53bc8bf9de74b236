"""mmdet's OpenImages metric with the dataset's own class names in its per-class AP table.

Not an equation of the paper. mmdet 3.3's ``OpenImagesMetric`` passes ``dataset='oid_v6'`` to
``eval_map``, whose summary then labels the rows with the first names of OpenImages' own 601
classes (Tortoise, Container, Magpie, ...) whatever the dataset's classes are. This metric gives
``eval_map`` the dataset's ``classes`` instead; everything else, the AP included, is mmdet's:
OpenImages' true/false-positive rule (``tpfp_openimages``, which ``dataset='oid_v6'`` selected),
group-of boxes, the class hierarchy, the metric keys (``openimages/AP50``, ``openimages/mAP``).
(``use_group_of=False`` fails in both alike: mmdet 3.3's ``eval_map`` unpacks two of the three
values ``tpfp_openimages`` returns; every config here keeps mmdet's ``True``.)
"""
from collections import OrderedDict

from mmdet.evaluation.functional import eval_map
from mmdet.evaluation.functional.mean_ap import tpfp_openimages
from mmdet.evaluation.metrics import OpenImagesMetric
from mmdet.registry import METRICS
from mmengine.logging import MMLogger, print_log

__all__ = ['OpenImagesOwnClassesMetric']


@METRICS.register_module()
class OpenImagesOwnClassesMetric(OpenImagesMetric):
    """``OpenImagesMetric`` (same arguments, same results) whose per-class table names the rows
    with ``dataset_meta['classes']``: the dataset's label file, OpenImages' or a user's own."""

    def compute_metrics(self, results: list) -> dict:
        logger = MMLogger.get_current_instance()
        gts, preds = zip(*results)
        classes = list(self.dataset_meta['classes'])  # what process() split the detections by
        eval_results = OrderedDict()
        mean_aps = []
        for iou_thr, ioa_thr in zip(self.iou_thrs, self.ioa_thrs):
            if self.use_group_of:
                assert ioa_thr is not None, 'ioa_thr must have value when using group_of in ' \
                                            'evaluation.'
            print_log(f'\n{"-" * 15}iou_thr, ioa_thr: {iou_thr}, {ioa_thr}{"-" * 15}')
            mean_ap, _ = eval_map(
                preds, gts, scale_ranges=self.scale_ranges, iou_thr=iou_thr, ioa_thr=ioa_thr,
                dataset=classes,  # the table's names; mmdet passes 'oid_v6'
                tpfp_fn=tpfp_openimages,  # the rule 'oid_v6' chose in eval_map
                logger=logger, use_group_of=self.use_group_of)
            mean_aps.append(mean_ap)
            eval_results[f'AP{int(iou_thr * 100):02d}'] = round(mean_ap, 3)
        eval_results['mAP'] = sum(mean_aps) / len(mean_aps)
        return eval_results
