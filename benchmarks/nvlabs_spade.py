"""NVlabs' own SPADE (github.com/NVlabs/SPADE), imported from a copy OUTSIDE this repository, as the yardstick.

Nothing of NVlabs' code is in this repository (its licence is CC BY-NC-SA 4.0). Make the copy once::

    git clone https://github.com/NVlabs/SPADE /somewhere/SPADE          # models/, util/, options/
    git clone https://github.com/vacancy/Synchronized-BatchNorm-PyTorch /tmp/sbn
    cp /tmp/sbn/sync_batchnorm/*.py /somewhere/SPADE/models/networks/sync_batchnorm/   # its git submodule

and point ``--nvlabs-spade`` (benchmarks/run.py) or ``RETINA_NVLABS_SPADE`` at /somewhere/SPADE. The options
are NVlabs' defaults for its SPADE generator and multi-scale discriminator at the given label_nc / ngf /
crop size (num_upsampling_layers normal, norm_G spectralspadesyncbatch3x3, norm_D spectralinstance, 2 scales of
4 layers, no instance map, no VAE unless asked). ``util/util.py`` imports ``dill`` only to pickle option
files; when it is not installed the standard ``pickle`` stands in (nothing is pickled here).
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
from pathlib import Path

ENV = "RETINA_NVLABS_SPADE"


def nvlabs_root(path: str | None = None) -> Path:
    root = Path(path or os.environ.get(ENV, ""))
    if not (root / "models" / "networks" / "generator.py").is_file():
        raise SystemExit(f"error: NVlabs SPADE copy not found at '{root}': pass --nvlabs-spade DIR or set {ENV} "
                         "(see benchmarks/nvlabs_spade.py)")
    return root


def nvlabs_options(label_nc: int, ngf: int, crop: int, vae: bool = False) -> argparse.Namespace:
    return argparse.Namespace(
        ngf=ngf, ndf=ngf, label_nc=label_nc, semantic_nc=label_nc, crop_size=crop, aspect_ratio=1.0,
        num_upsampling_layers="normal", use_vae=vae, z_dim=256, norm_G="spectralspadesyncbatch3x3",
        norm_D="spectralinstance", norm_E="spectralinstance", n_layers_D=4, num_D=2, netD_subarch="n_layer",
        no_ganFeat_loss=False, output_nc=3, contain_dontcare_label=False, no_instance=True,
    )


def nvlabs_models(label_nc: int, ngf: int, crop: int, vae: bool = False, root: str | None = None):
    """(SPADEGenerator, MultiscaleDiscriminator) built by NVlabs' code with its default options."""
    sys.path.insert(0, str(nvlabs_root(root)))
    sys.modules.setdefault("dill", pickle)
    from models.networks.discriminator import MultiscaleDiscriminator
    from models.networks.generator import SPADEGenerator

    options = nvlabs_options(label_nc, ngf, crop, vae)
    return SPADEGenerator(options), MultiscaleDiscriminator(options)
