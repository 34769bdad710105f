# Faster R-CNN R-50 + MCA-E (mean + std, k=11): the MCA-S config with the other variant.
_base_ = './faster-rcnn_r50-mca-s_fpn_1x_coco.py'

model = dict(
    backbone=dict(
        mca=dict(variant='E', kernel_size=11),
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/resnet50_mca_e_mmdet.pth')))
