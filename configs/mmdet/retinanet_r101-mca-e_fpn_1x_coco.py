# RetinaNet R-101 + MCA-E: the R-50 config at depth 101.
_base_ = './retinanet_r50-mca-e_fpn_1x_coco.py'

model = dict(
    backbone=dict(
        depth=101,
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/resnet101_mca_e_mmdet.pth')))
