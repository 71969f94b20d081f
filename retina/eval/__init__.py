"""Metrics: fidelity (FID/KID, SWD, MS-SSIM, LPIPS) and pretrained-weight handling."""
