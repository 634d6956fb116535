"""ViTPose-H with the simple decoder (mmpose's ``td-hm_ViTPose-huge-simple``); see vitpose-base-simple."""
_base_ = ['./vitpose-huge_8xb64-210e_coco-256x192.py']

model = dict(
    neck=dict(type='FeatureMapProcessor', scale_factor=4.0, apply_relu=True),
    head=dict(deconv_out_channels=[], deconv_kernel_sizes=[], final_layer=dict(kernel_size=3, padding=1)))
