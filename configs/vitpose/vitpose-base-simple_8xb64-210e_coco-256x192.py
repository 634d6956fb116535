"""ViTPose-B with the simple decoder (ViTPose paper Sec. 3.1, mmpose's ``td-hm_ViTPose-base-simple``): ReLU and
bilinear x4 upsampling of the encoder's feature map, then one 3x3 conv to the heatmaps."""
_base_ = ['./vitpose-base_8xb64-210e_coco-256x192.py']

model = dict(
    neck=dict(type='FeatureMapProcessor', scale_factor=4.0, apply_relu=True),
    head=dict(deconv_out_channels=[], deconv_kernel_sizes=[], final_layer=dict(kernel_size=3, padding=1)))
