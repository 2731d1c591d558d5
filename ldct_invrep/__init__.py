"""ldct-invrep: unsupervised low-dose CT denoising (LIR, CVPR 2020) on MONAI."""

__version__ = "0.1.0"
