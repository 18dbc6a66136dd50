"""The single-image patch generator: the released augmentation recipe as batched renders on the device.

``sampling`` draws each patch's parameters, ``generator`` renders batches (torch ops, the reference),
``render_cpu`` / ``render_gpu`` are the fused renders (numba, Triton) with the row ``layout`` they read;
``augment`` names the recipe's steps and ablation presets, ``colour`` is the colour jitter.
"""
